import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonOutput
import groovy.transform.Field

/*
 * The one runner every step of this library goes through (Piper's pattern):
 *
 *  1. check the parameter keys against the step's JSON Schema
 *     (resources/schemas/steps/STEP.json, the same file jenkinsctl validates
 *     against and vars/STEP.txt is generated from);
 *  2. bind the credentials named by *CredentialsId parameters to the
 *     environment variables the schema names (never to a command line);
 *  3. run ONE single-quoted sh that checks the agent's jenkinsctl version,
 *     runs the command with the parameters as JSON in JENKINSCTL_PARAMS, and
 *     prints the result and error-details files, which a trap removes
 *     whatever happens (failure, abort, timeout);
 *  4. read the result JSON back into a Map, or turn jenkinsctl's
 *     error-details JSON into one error() (unstable() with failOnError: false).
 *
 * Everything else (types, patterns, Docker, the registry) is jenkinsctl's
 * job, where it is unit-tested and runs outside Jenkins too.
 *
 * The library works when loaded untrusted (in the Groovy sandbox): JSON is
 * parsed with readJSON (pipeline-utility-steps) and written with
 * JsonOutput.toJson(Map), both allowed there, and nothing else outside the
 * sandbox's generic whitelist is used (tests/groovy/SandboxTest.groovy).
 */

// The only shell command the library runs: one durable-task step per call.
// A constant string: every value reaches it through the environment.
//  - PID 1 running "cat" is the container docker.inside / withDockerContainer
//    starts; there the bound credentials were passed as "docker exec --env
//    K=V" on the host's command line, so stop before anything uses them.
//  - The helper must be of the library's MAJOR.MINOR series.
//  - jenkinsctl's stdout joins its log on stderr, so the captured stdout is
//    only the report the runner parses (lines starting with @@jenkinsctl).
@Field static final String RUN_SCRIPT = '''\
trap 'rm -f -- "$JENKINSCTL_RESULT_FILE" "$JENKINSCTL_ERROR_FILE"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
case " $(tr '\\000' ' ' </proc/1/cmdline 2>/dev/null)" in
  *" cat ") echo '@@jenkinsctl inside-container'; exit 0 ;;
esac
found=$(jenkinsctl --version 2>/dev/null) || found=''
case "$found" in
  "jenkinsctl $JENKINSCTL_SERIES".*) ;;
  *) echo "@@jenkinsctl version $found"; exit 0 ;;
esac
status=0
jenkinsctl --params-env JENKINSCTL_PARAMS --error-file "$JENKINSCTL_ERROR_FILE" \\
  "$JENKINSCTL_COMMAND" --result "$JENKINSCTL_RESULT_FILE" >&2 || status=$?
echo "@@jenkinsctl status $status"
if [ -s "$JENKINSCTL_RESULT_FILE" ]; then echo '@@jenkinsctl result'; cat -- "$JENKINSCTL_RESULT_FILE"; echo; fi
if [ "$status" != 0 ] && [ -s "$JENKINSCTL_ERROR_FILE" ]; then
  echo '@@jenkinsctl error'; cat -- "$JENKINSCTL_ERROR_FILE"; echo
fi
'''

/** The report line prefix of RUN_SCRIPT. */
@Field static final String MARK = '@@jenkinsctl '

/**
 * Run the jenkinsctl command behind a step.
 *
 * @param step name of the calling step; selects resources/schemas/steps/STEP.json
 * @param params the Map the pipeline author passed to the step
 * @return the command's result JSON as a Map (with failOnError: false and a
 *         failure: what the command reported before failing, plus error)
 */
Map call(String step, Map params) {
    Map schema = parseJson(libraryResource("schemas/steps/${step}.json"))
    Map given = withoutNulls(params ?: [:])
    List<String> problems = keyProblems(schema, given) + runnerProblems(schema, given)
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
    Map options = runnerOptions(schema, given)
    Map forJenkinsctl = withoutRunnerKeys(schema, given)
    if (options.timeout) {
        Map outcome = [:]
        timeout(time: options.timeout, unit: 'MINUTES') {
            outcome = runOnce(schema, forJenkinsctl)
        }
        return finish(step, outcome, options)
    }
    return finish(step, runOnce(schema, forJenkinsctl), options)
}

/** Bind the credentials and run RUN_SCRIPT once; returns what it reported. */
Map runOnce(Map schema, Map given) {
    String command = schema['x-jenkinsctl'].command
    String wanted = libraryResource('io/jenkinsctl/version.txt').trim()
    String base = "${pwd(tmp: true)}/jenkinsctl-${UUID.randomUUID()}"
    List bindings = []
    for (Map b in credentialBindings(schema, given)) {
        bindings << binding(b)
    }
    // A local, not the @Field constant, inside the closures below: a closure
    // resolves names through the script's binding first.
    final String runScript = RUN_SCRIPT
    String out = ''
    withCredentials(bindings) {
        withEnv(["JENKINSCTL_PARAMS=${JsonOutput.toJson(given)}",
                 "JENKINSCTL_COMMAND=${command}",
                 "JENKINSCTL_SERIES=${series(wanted)}",
                 "JENKINSCTL_RESULT_FILE=${base}-result.json",
                 "JENKINSCTL_ERROR_FILE=${base}-error.json"]) {
            out = sh(script: runScript, returnStdout: true, label: "jenkinsctl ${command}")
        }
    }
    Map report = parseReport(out)
    report.command = command
    report.wanted = wanted
    return report
}

/** Turn one run's report into the step's result, error() or unstable(). */
Map finish(String step, Map report, Map options) {
    if (report.insideContainer) {
        error("[${step}] runs on the agent itself, not inside docker.image().inside { } or " +
              'withDockerContainer: there Jenkins passes every variable, the registry password ' +
              "included, as 'docker exec --env NAME=VALUE' on the host's command line, where local users " +
              'can read it (hint: call the step outside the inside { } block, where build and test steps may ' +
              'stay; and change the bound credentials, which this call exposed)')
    }
    if (report.containsKey('found')) {
        error(versionMessage(step, report.found, report.wanted))
    }
    if (report.status == null) {
        error("[${step}] jenkinsctl ${report.command} ended without reporting a status " +
              '(hint: the agent killed the shell, or its sh is not a POSIX shell; see the log above)')
    }
    Map result = report.result ? parseJsonOrEmpty(report.result) : [:]
    if (report.status != 0) {
        if (result?.digest) {
            echo("[${step}] before the failure: ${summary(result)}")
        }
        Map details = report.error ? parseJsonOrEmpty(report.error) : [:]
        String message = failureMessage(step, report.command, report.status, details)
        if (options.failOnError) {
            error(message)
        }
        unstable(message)
        result.error = message
        return result
    }
    if (!report.result) {
        error("[${step}] jenkinsctl ${report.command} succeeded but wrote no result file " +
              '(hint: the agent\'s jenkinsctl must support --result; see the log above)')
    }
    result = parseJson(report.result)
    echo("[${step}] ${summary(result)}")
    return result
}

/** The error for a missing helper or one of another MAJOR.MINOR series. */
@NonCPS
String versionMessage(String step, String found, String wanted) {
    String series = series(wanted)
    String fix = "use agents built for this library: on the host that provisions them, with jenkinsctl ${series}.x, " +
        'run jenkinsctl agent-image, then jenkinsctl apply (it re-creates the agents from the new image)'
    if (!found) {
        return "[${step}] jenkinsctl was not found on agent ${env.NODE_NAME} (hint: ${fix})"
    }
    return "[${step}] agent ${env.NODE_NAME} has ${found}, but this library (${wanted}) works only with " +
        "jenkinsctl ${series}.x (hint: ${fix}; or load the library release that matches the agent's jenkinsctl)"
}

/** MAJOR.MINOR of a version: helpers of the same series are compatible. */
@NonCPS
String series(String version) {
    List<String> parts = version.tokenize('.')
    return parts.size() >= 2 ? "${parts[0]}.${parts[1]}" : version
}

/** RUN_SCRIPT's stdout: status, result and error text, or why it stopped early. */
@NonCPS
Map parseReport(String out) {
    Map report = [status: null, result: null, error: null]
    String section = null
    List<String> body = []
    Closure flush = {
        if (section) {
            report[section] = body.join('\n').trim()
        }
        body = []
    }
    for (String line in (out ?: '').readLines()) {
        if (!line.startsWith(MARK)) {
            body << line
            continue
        }
        String rest = line.substring(MARK.length())
        flush()
        section = null
        if (rest == 'inside-container') {
            report.insideContainer = true
        } else if (rest.startsWith('version')) {
            report.found = rest.substring('version'.length()).trim()
        } else if (rest.startsWith('status ')) {
            report.status = Integer.parseInt(rest.substring('status '.length()).trim())
        } else if (rest == 'result' || rest == 'error') {
            section = rest
        }
    }
    flush()
    return report
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

/** A JSON object as a plain Map (readJSON's returnPojo: serializable, so it survives a CPS checkpoint). */
Map parseJson(String text) {
    Object parsed = readJSON(text: text, returnPojo: true)
    if (!(parsed instanceof Map)) {
        error("[jenkinsctlRun] expected a JSON object, got ${parsed == null ? 'null' : parsed.getClass().simpleName}")
    }
    return parsed
}

/** A JSON object, or an empty Map for text that is truncated or not an object. */
Map parseJsonOrEmpty(String text) {
    Object parsed = null
    try {
        parsed = readJSON(text: text, returnPojo: true)
    // readJSON's parse error is a plugin class (net.sf.json.JSONException) the
    // library cannot import; any failure here means "no usable JSON".
    /* groovylint-disable-next-line CatchException */
    } catch (Exception ignored) {
        return [:]
    }
    return parsed instanceof Map ? parsed : [:]
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

/** The keys the runner itself uses (x-runner in the schema) never reach
 *  jenkinsctl, so their types and ranges are checked here. */
@NonCPS
List<String> runnerProblems(Map schema, Map params) {
    List<String> problems = []
    schema['properties'].each { name, prop ->
        if (!prop['x-runner'] || !params.containsKey(name)) {
            return
        }
        Object v = params[name]
        if (prop.type == 'boolean' && !(v instanceof Boolean)) {
            problems << "parameter '${name}' must be true or false, not '${v}'".toString()
        } else if (prop.type == 'integer' && !(v instanceof Integer && v >= prop.minimum && v <= prop.maximum)) {
            // timeout(time:) takes whole minutes
            problems << ("parameter '${name}' must be a whole number of minutes from ${prop.minimum} to " +
                         "${prop.maximum}, not '${v}'").toString()
        }
    }
    return problems
}

/** The runner's options with the schema's defaults. */
@NonCPS
Map runnerOptions(Map schema, Map params) {
    Map out = [:]
    schema['properties'].each { name, prop ->
        if (prop['x-runner']) {
            out[name] = params.containsKey(name) ? params[name] : prop['default']
        }
    }
    return out
}

@NonCPS
Map withoutRunnerKeys(Map schema, Map params) {
    Map out = [:]
    params.each { k, v ->
        if (!schema['properties'][k]?.get('x-runner')) {
            out[k] = v
        }
    }
    return out
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

/** Levenshtein distance, on Lists (the sandbox has no rule for array casts). */
@NonCPS
int distance(String a, String b) {
    List<Integer> prev = []
    for (int j = 0; j <= b.length(); j++) {
        prev.add(j)
    }
    for (int i = 1; i <= a.length(); i++) {
        List<Integer> cur = [i]
        for (int j = 1; j <= b.length(); j++) {
            int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
            cur.add(Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost))
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

@NonCPS
String failureMessage(String step, String command, int status, Map details) {
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
