/**
 * A small JenkinsPipelineUnit for Groovy 2.4: loads every vars/ script of the
 * library, stubs the pipeline steps they use, and records each call.
 *
 * Two modes:
 *  - mock (default): sh calls go to shHandler, a closure that plays the
 *    agent (see FakeJenkinsctl);
 *  - real shell (realShell = true): sh runs "sh -xe -c SCRIPT" like the
 *    durable-task plugin, in the workspace, with the pipeline's environment;
 *    withCredentials exposes secrets as environment variables (and a file
 *    for file credentials) exactly as the credentials-binding plugin does.
 *
 * Files (readFile, writeFile, fileExists, pwd) are real files under a
 * per-test temporary workspace in both modes.
 *
 * Like Jenkins, every script has its own Binding (ScriptBinding), and a
 * step, option or directive works only when a plugin listed in
 * resources/controller/plugins.txt provides it, per the one table
 * resources/schemas/pipeline-plugins.json. Each call of a library step
 * records how many sh steps it ran (stepCalls).
 */
class PipelineHarness {

    final File repo
    final File root
    final File workspace
    File tmpDir
    File cwd

    /** The pipeline's env: what env.X reads and what withEnv/withCredentials add to. */
    Map<String, String> env = [:]
    /** Every step call, in order: [name: 'sh', args: [...]]. */
    final List<Map> calls = []
    /** The build log: echo lines and everything sh printed. */
    final List<String> log = []
    /** Jenkins credentials store: id -> [type: 'usernamePassword', username:, password:] etc. */
    final Map<String, Map> credentials = [:]
    /** Step/option/global name -> [plugin:, via:, as: [...]] (resources/schemas/pipeline-plugins.json). */
    final Map<String, Map> pluginTable
    /** Plugin names in resources/controller/plugins.txt (versions ignored). */
    final Set<String> installedPlugins
    /** One entry per outermost library step call: [step: name, sh: number of sh steps it ran]. */
    final List<Map> stepCalls = []
    private int shCount = 0
    private int libraryDepth = 0
    private int optionsDepth = 0
    /** Make the next timeout step expire (Jenkins interrupts its body). */
    boolean expireTimeouts = false

    /** Mock mode: receives [script, returnStdout, returnStatus, label, env, cwd]; returns
     *  an Integer status, a String stdout, or [status:, stdout:]. */
    Closure shHandler = { Map call -> 0 }
    boolean realShell = false
    boolean unix = true
    /** Print the log as it is written (the end-to-end test turns this on). */
    boolean echoLog = false
    long shTimeoutMillis = 15 * 60 * 1000L

    /** Let any unknown name act as a step that runs its closure: enough to walk
     *  a declarative pipeline (pipeline, agent, stages, when, post...). */
    boolean declarative = false
    final Binding binding = new StepBinding(this)
    final Map<String, Script> scripts = [:]
    final Expando currentBuild = new Expando(result: 'SUCCESS', currentResult: 'SUCCESS',
                                             number: 42, description: null, displayName: '#42')

    PipelineHarness(File repo) {
        this.repo = repo.canonicalFile
        root = File.createTempDir('jenkinsctl-harness-', '')
        workspace = new File(root, 'workspace')
        tmpDir = new File(root, 'workspace@tmp')
        workspace.mkdirs()
        tmpDir.mkdirs()
        cwd = workspace
        pluginTable = new groovy.json.JsonSlurperClassic()
            .parse(new File(this.repo, 'resources/schemas/pipeline-plugins.json')).names as Map
        installedPlugins = pluginsTxt(new File(this.repo, 'resources/controller/plugins.txt'))
        env.putAll(NODE_NAME: 'agent-1', WORKSPACE: workspace.path, BUILD_NUMBER: '42',
                   JOB_NAME: 'team/app/main', BRANCH_NAME: 'main', BUILD_URL: 'http://jenkins.invalid/job/42/')
        registerSteps()
    }

    /** NAME or NAME:VERSION lines; comments and blank lines ignored. */
    static Set<String> pluginsTxt(File f) {
        return f.readLines().collect { it.replaceAll(/#.*/, '').trim() }.findAll { it }
            .collect { it.split(':')[0].trim() } as Set
    }

    /** Compile every vars/*.groovy and make each callable by name, like Jenkins does. */
    PipelineHarness loadVars() {
        GroovyShell shell = new GroovyShell(getClass().classLoader, binding)
        new File(repo, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { f ->
            String name = f.name - '.groovy'
            Script script = shell.parse(f)
            script.binding = new ScriptBinding(binding)
            scripts[name] = script
            binding.setVariable(name, { Object[] args -> callLibraryStep(name, script, args) })
        }
        return this
    }

    private Object callLibraryStep(String name, Script script, Object[] args) {
        boolean outermost = libraryDepth == 0
        int before = shCount
        libraryDepth++
        try {
            return script.invokeMethod('call', args)
        } finally {
            libraryDepth--
            if (outermost) {
                stepCalls << [step: name, sh: shCount - before]
            }
        }
    }

    /** Run pipeline code written as a string (an example from the docs, a Jenkinsfile body). */
    Object runScript(String code) {
        Script script = new GroovyShell(getClass().classLoader, binding).parse(code)
        script.binding = new ScriptBinding(binding)
        return script.run()
    }

    /** Fail like Jenkins when no plugin in plugins.txt provides NAME as KIND. */
    void requirePlugin(String name, String kind) {
        Map entry = pluginTable[name]
        if (entry == null) {
            throw new PipelineError("No such DSL method '${name}': resources/schemas/pipeline-plugins.json " +
                                    'names no plugin for it')
        }
        if (!(kind in (entry.as as List))) {
            throw new PipelineError(kind == 'option' ? "Invalid option type \"${name}\"" :
                                    "${name} is not valid as ${kind} (it is: ${entry.as})")
        }
        String needed = entry.via ?: entry.plugin
        if (needed != 'core' && !(needed in installedPlugins)) {
            throw new PipelineError(kind == 'option' ? "Invalid option type \"${name}\": plugin ${entry.plugin} " +
                                    'is not in resources/controller/plugins.txt' :
                                    "No such DSL method '${name}': plugin ${entry.plugin} is not in " +
                                    'resources/controller/plugins.txt')
        }
    }

    /** The temporary directory pwd(tmp: true) names for a directory, as WorkspaceList.tempDir does. */
    static File tempDirOf(File dir) {
        return new File(dir.parentFile, dir.name + '@tmp')
    }

    void cleanup() {
        root.deleteDir()
    }

    /** The generic step a declarative keyword becomes. */
    Closure genericStep(String name) {
        return { Object[] args ->
            record(name, args as List)
            Map entry = pluginTable[name]
            String kind = optionsDepth > 0 ? 'option' : (entry.as as List)[0]
            requirePlugin(name, kind)
            Object last = args ? args[-1] : null
            if (!(last instanceof Closure)) {
                return null
            }
            if (name == 'environment') {
                EnvCapture capture = new EnvCapture(binding: binding)
                Closure body = ((Closure) last).rehydrate(capture, last.owner, last.thisObject)
                body.resolveStrategy = Closure.DELEGATE_FIRST
                body.call()
                capture.captured().each { k, v -> env[k] = String.valueOf(v) }
                return null
            }
            if (name == 'options') {
                optionsDepth++
                try {
                    return ((Closure) last).call()
                } finally {
                    optionsDepth--
                }
            }
            return ((Closure) last).call()
        }
    }

    // ---- recorded calls ------------------------------------------------------------

    List<Map> callsTo(String name) {
        return calls.findAll { it.name == name }
    }

    /** The script text of each sh call (what Jenkins shows and records). */
    List<String> shScripts() {
        return callsTo('sh').collect { Map c -> c.args[0] instanceof Map ? c.args[0].script : c.args[0] } as List<String>
    }

    String logText() {
        return log.join('\n')
    }

    // ---- the steps -------------------------------------------------------------------

    private void record(String name, List args) {
        calls << [name: name, args: args]
    }

    private void step(String name, Closure impl) {
        binding.setVariable(name, { Object[] args ->
            record(name, args as List)
            requirePlugin(name, optionsDepth > 0 ? 'option' : 'step')
            impl.call(args as List)
        })
    }

    private void appendLog(String text) {
        text.readLines().each { line ->
            log << line
            if (echoLog) {
                println "    | ${line}"
            }
        }
    }

    private File resolve(String path) {
        File f = new File(path)
        return f.absolute ? f : new File(cwd, path)
    }

    private static Map opts(List args, String positional) {
        if (args && args[0] instanceof Map) {
            return args[0] as Map
        }
        return args ? [(positional): args[0]] : [:]
    }

    private void registerSteps() {
        binding.setVariable('env', env)
        binding.setVariable('params', [:])
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('scm', [$class: 'GitSCM'])

        step('echo') { List a -> appendLog(String.valueOf(a[0])) }
        step('error') { List a ->
            appendLog("ERROR: ${a[0]}")
            throw new PipelineError(String.valueOf(a[0]))
        }
        step('isUnix') { List a -> unix }
        // WorkspaceList.tempDir: DIR@tmp beside the current directory, so
        // inside dir('sub') it is WORKSPACE/sub@tmp.
        step('pwd') { List a -> opts(a, 'tmp').tmp ? tempDirOf(cwd).path : cwd.path }
        step('dir') { List a ->
            File before = cwd
            cwd = resolve(String.valueOf(a[0]))
            cwd.mkdirs()
            try {
                return (a[1] as Closure).call()
            } finally {
                cwd = before
            }
        }
        step('node') { List a -> (a[-1] as Closure).call() }
        step('stage') { List a -> (a[-1] as Closure).call() }
        step('libraryResource') { List a ->
            String rel = opts(a, 'resource').resource
            File f = new File(repo, "resources/${rel}")
            if (!f.file) {
                throw new PipelineError("No such library resource ${rel} could be found.")
            }
            f.getText('UTF-8')
        }
        step('readFile') { List a ->
            Map o = opts(a, 'file')
            File f = resolve(String.valueOf(o.file))
            if (!f.file) {
                throw new FileNotFoundException(f.path)
            }
            f.getText(o.encoding ?: 'UTF-8')
        }
        step('writeFile') { List a ->
            Map o = a[0] as Map
            File f = resolve(String.valueOf(o.file))
            f.parentFile.mkdirs()
            f.setText(String.valueOf(o.text), o.encoding ?: 'UTF-8')
            null
        }
        step('fileExists') { List a -> resolve(String.valueOf(opts(a, 'file').file)).exists() }
        step('withEnv') { List a -> withOverlay(parseEnvList(a[0] as List), a[1] as Closure) }
        step('usernamePassword') { List a -> [$symbol: 'usernamePassword'] + (a[0] as Map) }
        step('string') { List a -> [$symbol: 'string'] + (a[0] as Map) }
        step('file') { List a -> [$symbol: 'file'] + (a[0] as Map) }
        step('withCredentials') { List a -> withCredentialsImpl(a[0] as List, a[1] as Closure) }
        step('sh') { List a -> shImpl(opts(a, 'script')) }
        step('readJSON') { List a ->
            Map o = a[0] as Map
            // Without returnPojo the plugin returns net.sf.json objects, which
            // are not plain Maps; the library always asks for plain ones.
            assert o.returnPojo == true: 'readJSON without returnPojo: true'
            String text = o.text != null ? o.text : resolve(String.valueOf(o.file)).getText('UTF-8')
            try {
                new groovy.json.JsonSlurperClassic().parseText(text)
            } catch (groovy.json.JsonException e) {
                throw new PipelineError("readJSON: ${e.message}")
            }
        }
        step('unstable') { List a ->
            String message = String.valueOf(opts(a, 'message').message)
            appendLog("WARNING: ${message}")
            currentBuild.result = 'UNSTABLE'
            currentBuild.currentResult = 'UNSTABLE'
            null
        }
        step('timeout') { List a ->
            Object last = a[-1]
            if (!(last instanceof Closure)) {
                return null // the Declarative option
            }
            if (expireTimeouts) {
                throw new PipelineError('Timeout has been exceeded')
            }
            return (last as Closure).call()
        }
    }

    private static Map<String, String> parseEnvList(List entries) {
        Map<String, String> out = [:]
        entries.each { e ->
            String s = String.valueOf(e)
            int eq = s.indexOf('=')
            if (eq <= 0) {
                throw new PipelineError("withEnv: '${s}' is not NAME=VALUE")
            }
            out[s.substring(0, eq)] = s.substring(eq + 1)
        }
        return out
    }

    private Object withOverlay(Map<String, String> extra, Closure body) {
        Map<String, String> saved = new LinkedHashMap<>(env)
        env.putAll(extra)
        try {
            return body.call()
        } finally {
            env.clear()
            env.putAll(saved)
        }
    }

    private Object withCredentialsImpl(List bindings, Closure body) {
        Map<String, String> extra = [:]
        List<File> files = []
        bindings.each { Map b ->
            Map cred = credentials[b.credentialsId]
            if (cred == null) {
                throw new PipelineError("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            switch (b.$symbol) {
                case 'usernamePassword':
                    requireType(b, cred, 'usernamePassword')
                    extra[b.usernameVariable] = cred.username
                    extra[b.passwordVariable] = cred.password
                    break
                case 'string':
                    requireType(b, cred, 'string')
                    extra[b.variable] = cred.secret
                    break
                case 'file':
                    requireType(b, cred, 'file')
                    File f = File.createTempFile('secret', '.tmp', tmpDir)
                    f.text = cred.secret
                    files << f
                    extra[b.variable] = f.path
                    break
                default:
                    throw new PipelineError("unknown credentials binding ${b}")
            }
        }
        try {
            return withOverlay(extra, body)
        } finally {
            files*.delete()
        }
    }

    private static void requireType(Map b, Map cred, String type) {
        if (cred.type != type) {
            throw new PipelineError("Credentials '${b.credentialsId}' is of type '${cred.type}' where '${type}' was expected")
        }
    }

    private Object shImpl(Map o) {
        shCount++
        // durable-task keeps its control files in DIR@tmp, so sh creates it.
        tempDirOf(cwd).mkdirs()
        Map call = [script: String.valueOf(o.script), returnStdout: o.returnStdout ?: false,
                    returnStatus: o.returnStatus ?: false, label: o.label,
                    env: new LinkedHashMap<>(env), cwd: cwd]
        Map r = realShell ? runShell(call) : normalize(shHandler.call(call))
        if (!o.returnStdout && r.stdout && !realShell) {
            appendLog(r.stdout)
        }
        if (o.returnStatus) {
            return r.status
        }
        if (r.status != 0) {
            throw new PipelineError("script returned exit code ${r.status}")
        }
        return o.returnStdout ? r.stdout : null
    }

    private static Map normalize(Object r) {
        if (r instanceof Map) {
            return [status: r.status ?: 0, stdout: r.stdout ?: '']
        }
        if (r instanceof CharSequence) {
            return [status: 0, stdout: r.toString()]
        }
        return [status: (r ?: 0) as int, stdout: '']
    }

    /** What the durable-task plugin does, minus the wrapper script: sh -xe, env, cwd.
     *  Output goes to the log line by line as it comes, unless it is returned. */
    private Map runShell(Map call) {
        ProcessBuilder pb = new ProcessBuilder('sh', '-xe', '-c', call.script as String)
        pb.directory(cwd)
        pb.environment().putAll(call.env as Map<String, String>)
        pb.redirectErrorStream(!call.returnStdout)
        Process p = pb.start()
        p.outputStream.close()
        StringBuilder out = new StringBuilder()
        Thread tErr = null
        StringBuilder err = new StringBuilder()
        if (call.returnStdout) {
            tErr = p.consumeProcessErrorStream(err)
        }
        Thread watchdog = Thread.start {
            try {
                Thread.sleep(shTimeoutMillis)
                p.destroyForcibly()
            } catch (InterruptedException ignored) {
                // the command finished first
            }
        }
        p.inputStream.eachLine('UTF-8') { String line ->
            if (call.returnStdout) {
                out.append(line).append('\n')
            } else {
                appendLog(line)
            }
        }
        int status = p.waitFor()
        watchdog.interrupt()
        tErr?.join()
        if (err) {
            appendLog(err.toString())
        }
        return [status: status, stdout: out.toString()]
    }
}
