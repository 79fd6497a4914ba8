import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonException
import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import groovy.transform.Field

/*
 * The one runner every step of this library goes through (Piper's pattern):
 *
 *  1. check the parameter keys against the step's JSON Schema
 *     (resources/schemas/steps/STEP.json, the same file jenkinsctl validates
 *     against and vars/STEP.txt is generated from);
 *  2. check that the agent's jenkinsctl is this library's version;
 *  3. bind the credentials named by *CredentialsId parameters to the
 *     environment variables the schema names (never to a command line);
 *  4. pass the parameters as JSON in JENKINSCTL_PARAMS and run jenkinsctl
 *     with a single-quoted sh, so no value is ever spliced into a shell;
 *  5. read the result JSON back into a Map, or turn jenkinsctl's
 *     error-details JSON into one error().
 *
 * Everything else (types, patterns, Docker, the registry) is jenkinsctl's
 * job, where it is unit-tested and runs outside Jenkins too.
 */

// The only shell commands the library runs. Constant strings: every value
// reaches them through the environment.
@Field static final String VERSION_SCRIPT = 'jenkinsctl --version 2>/dev/null || true'
@Field static final String RUN_SCRIPT = 'jenkinsctl --params-env JENKINSCTL_PARAMS ' +
    '--error-file "$JENKINSCTL_ERROR_FILE" "$JENKINSCTL_COMMAND" --result "$JENKINSCTL_RESULT_FILE"'
@Field static final String CLEANUP_SCRIPT = 'rm -f -- "$JENKINSCTL_RESULT_FILE" "$JENKINSCTL_ERROR_FILE"'

/**
 * Run the jenkinsctl command behind a step.
 *
 * @param step name of the calling step; selects resources/schemas/steps/STEP.json
 * @param params the Map the pipeline author passed to the step
 * @return the command's result JSON as a Map
 */
Map call(String step, Map params) {
    Map schema = parseJson(libraryResource("schemas/steps/${step}.json"))
    Map given = withoutNulls(params ?: [:])
    List<String> problems = keyProblems(schema, given)
    if (problems) {
        error("[${step}] ${problems.join('; ')} (hint: valid parameters: " +
              "${schema['properties'].keySet().sort().join(', ')}; see vars/${step}.txt)")
    }
    if (!env.NODE_NAME) {
        error("[${step}] must run on an agent (hint: call it inside node('docker') { } " +
              "or a stage with agent { label 'docker' })")
    }
    if (!isUnix()) {
        error("[${step}] needs a Linux agent with jenkinsctl and a Docker engine, " +
              "but ${env.NODE_NAME} is not Unix (hint: use an agent labelled docker)")
    }
    checkVersion(step)

    String command = schema['x-jenkinsctl'].command
    String base = "${pwd(tmp: true)}/jenkinsctl-${UUID.randomUUID()}"
    String resultFile = "${base}-result.json"
    String errorFile = "${base}-error.json"
    List bindings = []
    for (Map b in credentialBindings(schema, given)) {
        bindings << binding(b)
    }

    // Locals, not the @Field constants, inside the closures below: a closure
    // resolves names through the script's binding first.
    final String runScript = RUN_SCRIPT
    final String cleanupScript = CLEANUP_SCRIPT
    int status = 0
    String resultText = null
    String errorText = null
    withCredentials(bindings) {
        withEnv(["JENKINSCTL_PARAMS=${JsonOutput.toJson(given)}",
                 "JENKINSCTL_COMMAND=${command}",
                 "JENKINSCTL_RESULT_FILE=${resultFile}",
                 "JENKINSCTL_ERROR_FILE=${errorFile}"]) {
            status = sh(script: runScript, returnStatus: true, label: "jenkinsctl ${command}")
            // ship writes its result on a failed deploy too: the image was pushed.
            if (fileExists(resultFile)) {
                resultText = readFile(file: resultFile, encoding: 'UTF-8')
            }
            if (status != 0 && fileExists(errorFile)) {
                errorText = readFile(file: errorFile, encoding: 'UTF-8')
            }
            sh(script: cleanupScript, label: 'jenkinsctl: remove result files')
        }
    }

    if (status != 0) {
        Map partial = resultText ? parseJsonOrEmpty(resultText) : [:]
        if (partial?.digest) {
            echo("[${step}] before the failure: ${summary(partial)}")
        }
        error(failureMessage(step, command, status, errorText))
    }
    if (resultText == null) {
        error("[${step}] jenkinsctl ${command} succeeded but wrote no result file " +
              '(hint: the agent\'s jenkinsctl must support --result; see the log above)')
    }
    Map result = parseJson(resultText)
    echo("[${step}] ${summary(result)}")
    return result
}

/** Fail unless the agent runs exactly the jenkinsctl this library was released with. */
void checkVersion(String step) {
    String wanted = libraryResource('io/jenkinsctl/version.txt').trim()
    String reported = sh(script: VERSION_SCRIPT, returnStdout: true, label: 'jenkinsctl --version').trim()
    if (reported == "jenkinsctl ${wanted}") {
        return
    }
    String fix = "install it on the agent with pip install 'jenkinsctl==${wanted}', or rebuild the agent " +
        'image (jenkinsctl agent-image) and re-apply'
    if (!reported) {
        error("[${step}] jenkinsctl was not found on agent ${env.NODE_NAME} (hint: ${fix})")
    }
    error("[${step}] agent ${env.NODE_NAME} has ${reported} but this library needs jenkinsctl ${wanted} " +
          "(hint: ${fix}; or load the library version that matches the agent)")
}

/** The pipeline-side credential binding for one x-credential entry of the schema. */
Object binding(Map b) {
    switch (b.binding) {
        case 'usernamePassword':
            return usernamePassword(credentialsId: b.credentialsId,
                                    usernameVariable: b.usernameVariable,
                                    passwordVariable: b.passwordVariable)
        case 'string':
            return string(credentialsId: b.credentialsId, variable: b.variable)
        case 'file':
            return file(credentialsId: b.credentialsId, variable: b.variable)
        default:
            error("[jenkinsctlRun] unsupported credential binding '${b.binding}' in a step schema")
    }
    return null
}

/** Groovy callers write key: env.X for optional values; null means "not given". */
@NonCPS
Map withoutNulls(Map params) {
    Map out = [:]
    params.each { k, v ->
        if (v != null) {
            out[k.toString()] = v instanceof GString ? v.toString() : v
        }
    }
    return out
}

/** Unknown and missing keys, all at once; jenkinsctl checks types and values. */
@NonCPS
List<String> keyProblems(Map schema, Map params) {
    List<String> valid = schema['properties'].keySet() as List<String>
    List<String> problems = []
    params.keySet().each { key ->
        if (!valid.contains(key)) {
            String close = closest(key, valid)
            problems << "unknown parameter '${key}'${close ? " (did you mean '${close}'?)" : ''}".toString()
        }
    }
    (schema['required'] ?: []).each { key ->
        if (!params.containsKey(key)) {
            problems << "missing required parameter '${key}'".toString()
        }
    }
    return problems
}

/** The valid key nearest to a typo, or null when none is near. */
@NonCPS
String closest(String word, List<String> choices) {
    String best = null
    int bestDistance = Integer.MAX_VALUE
    choices.each { choice ->
        int d = choice.equalsIgnoreCase(word) ? 0 : distance(word.toLowerCase(), choice.toLowerCase())
        if (d < bestDistance) {
            best = choice
            bestDistance = d
        }
    }
    return bestDistance <= Math.max(2, (int) (word.length() / 3)) ? best : null
}

/** Levenshtein distance. */
@NonCPS
int distance(String a, String b) {
    int[] prev = (0..b.length()) as int[]
    for (int i = 1; i <= a.length(); i++) {
        int[] cur = new int[b.length() + 1]
        cur[0] = i
        for (int j = 1; j <= b.length(); j++) {
            int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
            cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost)
        }
        prev = cur
    }
    return prev[b.length()]
}

/** Plain Maps describing the withCredentials bindings the given parameters ask for. */
@NonCPS
List<Map> credentialBindings(Map schema, Map params) {
    List<Map> out = []
    schema['properties'].each { name, prop ->
        if (prop['x-credential'] && params[name]) {
            out << ([credentialsId: params[name].toString()] + prop['x-credential'])
        }
    }
    return out
}

/** A JSON object, or an empty Map for a file that is truncated or not an object. */
@NonCPS
Map parseJsonOrEmpty(String text) {
    try {
        return parseJson(text)
    } catch (JsonException | IllegalArgumentException ignored) {
        return [:]
    }
}

@NonCPS
String failureMessage(String step, String command, int status, String errorText) {
    Map details = errorText ? parseJsonOrEmpty(errorText) : [:]
    if (!details?.message) {
        return "[${step}] jenkinsctl ${command} failed with exit code ${status} and left no error details " +
            '(hint: see its output above)'
    }
    String hint = details.hint ? " (hint: ${details.hint})" : ''
    return "[${step}] ${details.message}${hint}"
}

@NonCPS
String summary(Map result) {
    String text = result.digest ? "${result.image}@${result.digest}" : "${result.image}"
    if (result.deploy instanceof Map) {
        // jenkinsctl reports the target as STRATEGY:NAME; older results had NAME alone.
        String target = "${result.deploy.target}".startsWith("${result.deploy.strategy}:") ?
            "${result.deploy.target}" : "${result.deploy.strategy}:${result.deploy.target}"
        text += ", deploy to ${target}: ${result.deploy.outcome}"
    }
    return text
}

/** JsonSlurperClassic: its maps are plain and serializable, so the result survives a CPS checkpoint. */
@NonCPS
Map parseJson(String text) {
    Object parsed = new JsonSlurperClassic().parseText(text)
    if (!(parsed instanceof Map)) {
        throw new IllegalArgumentException("expected a JSON object, got ${parsed?.getClass()?.simpleName}")
    }
    return parsed
}
