import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic

/**
 * Plays the agent for the mock-mode sh: runs the runner's one script the way
 * the shell would (RealShellTest runs the real script in a real sh): the
 * docker.inside check, the version check against JENKINSCTL_SERIES, the
 * command (recording its parameters JSON and the environment it saw), the
 * report on stdout, and the trap that removes the result files.
 */
class FakeJenkinsctl {

    static final String MARK = '@@jenkinsctl '

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
    /** The step runs in a container that docker.image().inside started. */
    boolean insideContainer = false
    /** Extra work inside the command, such as writing the files by hand: gets (params, env). */
    Closure during = null
    final List<Map> runs = []
    /** Whether the last run's result and error files were gone when the sh ended. */
    boolean cleanedUp = false

    FakeJenkinsctl(String version) {
        this.version = version
    }

    Closure handler() {
        return { Map call -> handle(call) }
    }

    Object handle(Map call) {
        String script = call.script
        if (!script.contains('jenkinsctl --params-env JENKINSCTL_PARAMS')) {
            throw new AssertionError("unexpected sh: ${script}")
        }
        Map env = call.env
        File resultFile = new File(env.JENKINSCTL_RESULT_FILE as String)
        File errorFile = new File(env.JENKINSCTL_ERROR_FILE as String)
        try {
            return [status: 0, stdout: report(env, resultFile, errorFile)]
        } finally {
            // the EXIT trap
            resultFile.delete()
            errorFile.delete()
            cleanedUp = !resultFile.exists() && !errorFile.exists()
        }
    }

    private String report(Map env, File resultFile, File errorFile) {
        if (insideContainer) {
            return MARK + 'inside-container\n'
        }
        String found = version == null ? '' : "jenkinsctl ${version}"
        if (!found.startsWith("jenkinsctl ${env.JENKINSCTL_SERIES}.")) {
            return "${MARK}version ${found}\n"
        }
        Map params = new JsonSlurperClassic().parseText(env.JENKINSCTL_PARAMS as String) as Map
        runs << [command: env.JENKINSCTL_COMMAND, params: params, env: env]
        int status = 0
        if (during != null) {
            status = (during.call(params, env) ?: 0) as int
        } else if (crashStatus != null) {
            status = crashStatus
        } else if (failure) {
            errorFile.text = JsonOutput.toJson(failure.details)
            status = failure.exit as int
        } else if (writeResult) {
            Object r = result instanceof Closure ? (result as Closure).call(params) : result
            resultFile.text = JsonOutput.toJson(r)
        }
        StringBuilder out = new StringBuilder("${MARK}status ${status}\n")
        if (resultFile.length() > 0) {
            out << "${MARK}result\n${resultFile.text}\n"
        }
        if (status != 0 && errorFile.length() > 0) {
            out << "${MARK}error\n${errorFile.text}\n"
        }
        return out.toString()
    }
}
