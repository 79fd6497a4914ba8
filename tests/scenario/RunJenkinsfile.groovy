/*
 * Run a scripted Jenkinsfile's stages on the Groovy 2.4 harness
 * (tests/groovy/lib/PipelineHarness), with every `sh` executed INSIDE an
 * agent container as user jenkins: what Jenkins' remoting agent, launched
 * over SSH, does with a durable task.
 *
 *   groovy -cp tests/groovy/lib:tests/groovy/stubs tests/scenario/RunJenkinsfile.groovy SPEC.json
 *
 * SPEC.json (written by tests/scenario/test_story.py):
 *   jenkinsfile  path of the Jenkinsfile
 *   source       directory `checkout scm` copies into the workspace
 *   container    the agent container to run sh in (docker exec -u jenkins)
 *   node         NODE_NAME; the harness workspace lies under java.io.tmpdir,
 *                which must be inside the node's remoteFS (bind-mounted at the
 *                same path on host and agent), so files are shared
 *   env          Jenkins environment (global properties, BUILD_NUMBER ...)
 *   params       build parameters
 *   credentials  id -> [type: usernamePassword, username:, password:]
 *   out          where to write [result, error, log, sh]
 *
 * The `sh` environment reaches the agent through `docker exec --env-file`
 * (a 0600 file outside the workspace, deleted after each call), never
 * through argv, so a bound credential is not visible in the host's process
 * list.
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

Map spec = new JsonSlurper().parse(new File(args[0])) as Map
File repo = new File(System.getProperty('jenkinsctl.repo', '.')).canonicalFile
File jenkinsfile = new File(spec.jenkinsfile as String)
String container = spec.container
String dockerCli = spec.docker ?: 'docker'

PipelineHarness h = new PipelineHarness(repo)
h.loadVars()
h.env.putAll([NODE_NAME: spec.node, JOB_NAME: 'pyapp', BUILD_URL: "http://jenkins.invalid/job/pyapp/${spec.env.BUILD_NUMBER}/"])
h.env.putAll(spec.env as Map<String, String>)
h.env.WORKSPACE = h.workspace.path
h.binding.setVariable('params', spec.params ?: [:])
(spec.credentials as Map).each { id, c -> h.credentials[id] = c }

int run(List argv) {
    Process p = new ProcessBuilder(argv.collect { it.toString() }).redirectErrorStream(true).start()
    String out = p.inputStream.getText('UTF-8')
    int rc = p.waitFor()
    if (rc != 0) {
        throw new IllegalStateException("${argv.join(' ')} failed (${rc}): ${out}")
    }
    return rc
}

// The agent runs builds as jenkins (uid 1000): the workspace is theirs.
void giveToJenkins(File dir) {
    run(['chown', '-R', '1000:1000', dir.path])
}
giveToJenkins(h.root)

// Steps of the Jenkinsfile the harness does not stub: job properties are
// Jenkins' business (recorded only), and checkout copies the source.
['properties', 'parameters', 'booleanParam'].each { String name ->
    h.binding.setVariable(name, { Object[] a -> h.calls << [name: name, args: a as List]; [$symbol: name, args: a as List] })
}
h.binding.setVariable('checkout', { Object[] a ->
    h.calls << [name: 'checkout', args: a as List]
    run(['cp', '-a', "${spec.source}/.", h.cwd.path])
    giveToJenkins(h.cwd)
    h.log << "checkout: ${spec.source} -> ${h.cwd.path}".toString()
    return [:]
})

h.shHandler = { Map call ->
    // The harness makes DIR@tmp for sh on this side, as root; on a real
    // agent the agent's own user makes it (durable-task), so it is theirs.
    giveToJenkins(PipelineHarness.tempDirOf(call.cwd as File))
    File envFile = File.createTempFile('sh-env-', '.list', new File('/tmp'))
    try {
        run(['chmod', '600', envFile.path])
        envFile.withWriter('UTF-8') { w ->
            (call.env as Map).each { k, v ->
                String value = String.valueOf(v)
                if (value.contains('\n')) {
                    throw new IllegalArgumentException("env ${k} holds a newline; docker exec --env-file cannot pass it")
                }
                w << "${k}=${value}\n"
            }
        }
        List argv = [dockerCli, 'exec', '-u', 'jenkins', '-w', (call.cwd as File).path,
                     '--env-file', envFile.path, container, 'sh', '-xe', '-c', call.script]
        ProcessBuilder pb = new ProcessBuilder(argv.collect { it.toString() })
        pb.redirectErrorStream(!call.returnStdout)
        Process p = pb.start()
        p.outputStream.close()
        StringBuilder err = new StringBuilder()
        Thread tErr = call.returnStdout ? p.consumeProcessErrorStream(err) : null
        StringBuilder out = new StringBuilder()
        p.inputStream.eachLine('UTF-8') { String line ->
            out.append(line).append('\n')
            if (!call.returnStdout) {
                println "    | ${line}"
            }
        }
        int status = p.waitFor()
        tErr?.join()
        if (err) {
            h.log << err.toString()
        }
        return [status: status, stdout: out.toString()]
    } finally {
        envFile.delete()
    }
}

// `@Library('jenkinsctl') _` loads the library, which the harness has loaded
// already (loadVars): blank the line so line numbers stay the same.
String code = jenkinsfile.getText('UTF-8').replaceAll(/(?m)^@Library\(.*\)\s*_\s*$/, '')
Map out = [result: 'SUCCESS', error: null]
long t0 = System.currentTimeMillis()
try {
    h.runScript(code)
} catch (PipelineError e) {
    out.result = 'FAILURE'
    out.error = e.message
    String first = "ERROR: ${e.message.readLines()[0]}".toString()
    if (!h.log.contains(first)) {
        h.log << "ERROR: ${e.message}".toString()  // a failing sh; error() logged itself
    }
} catch (Throwable e) {
    // Not a pipeline failure but a broken Jenkinsfile or harness: say so.
    out.result = 'BROKEN'
    out.error = e.toString()
    StringWriter trace = new StringWriter()
    e.printStackTrace(new PrintWriter(trace))
    h.log << trace.toString()
} finally {
    out.seconds = (System.currentTimeMillis() - t0) / 1000.0
    out.log = h.log
    out.sh = h.shScripts()
    out.workspace = h.workspace.path
    new File(spec.out as String).setText(JsonOutput.prettyPrint(JsonOutput.toJson(out)), 'UTF-8')
}
println "Finished: ${out.result}"
