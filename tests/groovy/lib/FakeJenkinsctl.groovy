import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic

/**
 * Plays jenkinsctl on the agent for the mock-mode sh: answers --version,
 * records each run (its parameters JSON and the environment it saw), and
 * writes the result file or the error-details file the way the real CLI does.
 */
class FakeJenkinsctl {

    String version
    /** What the next run writes to --result; a Closure gets the parsed params. */
    Object result = [image: 'registry.example.com/team/app',
                     digest: 'sha256:' + 'a' * 64, tags: ['42'], deploy: null,
                     durations: [build: 1.5, push: 0.5]]
    /** When set, the run fails: [exit: 5, details: [message:, hint:, category:, ...]]. */
    Map failure = null
    /** Fail without writing an error file (a crash, a killed process). */
    Integer crashStatus = null
    boolean writeResult = true
    final List<Map> runs = []

    FakeJenkinsctl(String version) {
        this.version = version
    }

    Closure handler() {
        return { Map call -> handle(call) }
    }

    Object handle(Map call) {
        String script = call.script
        Map env = call.env
        if (script.startsWith('jenkinsctl --version')) {
            return version == null ? '' : "jenkinsctl ${version}\n"
        }
        if (script.startsWith('rm -f')) {
            [env.JENKINSCTL_RESULT_FILE, env.JENKINSCTL_ERROR_FILE].each { new File(it as String).delete() }
            return 0
        }
        if (script.startsWith('jenkinsctl --params-env')) {
            Map params = new JsonSlurperClassic().parseText(env.JENKINSCTL_PARAMS as String) as Map
            runs << [command: env.JENKINSCTL_COMMAND, params: params, env: env, script: script]
            if (crashStatus != null) {
                return crashStatus
            }
            if (failure) {
                new File(env.JENKINSCTL_ERROR_FILE as String).text = JsonOutput.toJson(failure.details)
                return failure.exit
            }
            if (writeResult) {
                Object r = result instanceof Closure ? (result as Closure).call(params) : result
                new File(env.JENKINSCTL_RESULT_FILE as String).text = JsonOutput.toJson(r)
            }
            return [status: 0, stdout: "shipped\n"]
        }
        throw new AssertionError("unexpected sh: ${script}")
    }
}
