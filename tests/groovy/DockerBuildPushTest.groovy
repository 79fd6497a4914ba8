import groovy.json.JsonSlurperClassic

class DockerBuildPushTest extends HarnessTest {

    String runScript() {
        java.lang.reflect.Field f = h.scripts.jenkinsctlRun.getClass().getDeclaredField('RUN_SCRIPT')
        f.accessible = true
        return f.get(null)
    }

    void testDefaultsSendOnlyWhatTheAuthorGave() {
        Map result = step('dockerBuildPush', [image: 'registry.example.com/team/app'])

        Map run = onlyRun(agent)
        assert run.command == 'ship'
        assert run.params == [image: 'registry.example.com/team/app']
        assert h.shScripts() == [runScript()]
        assert h.stepCalls == [[step: 'dockerBuildPush', sh: 1]]
        assert agent.cleanedUp
        assert h.callsTo('withCredentials')*.args*.getAt(0) == [[]]
        assert !run.env.containsKey('JENKINSCTL_REGISTRY_PASSWORD')
        assert result == agent.result
        assert h.log.contains("[dockerBuildPush] registry.example.com/team/app@sha256:${'a' * 64}".toString())
    }

    void testResultMapIsWhatJenkinsctlWrote() {
        agent.result = [image: 'r.example/app', digest: 'sha256:' + 'b' * 64, tags: ['1.0', 'latest'],
                        deploy: [strategy: 'container', target: 'web', outcome: 'switched'],
                        durations: [build: 3.2, push: 1.1, deploy: 4.0]]
        Map result = step('dockerBuildPush', [image: 'r.example/app', deployTo: 'container:web'])

        assert result.digest == 'sha256:' + 'b' * 64
        assert result.tags == ['1.0', 'latest']
        assert result.deploy.outcome == 'switched'
        assert result instanceof Serializable // survives a CPS checkpoint
        assert h.log.any { it.contains(', deploy to container:web: switched') }
        agent.result.deploy.target = 'container:web'
        step('dockerBuildPush', [image: 'r.example/app', deployTo: 'container:web'])
        assert h.log.count { it.contains(', deploy to container:web: switched') } == 2
    }

    void testEveryParameterReachesJenkinsctl() {
        Map params = [
            image: 'registry.example.com/team/app',
            context: 'services/api',
            dockerfile: 'docker/Dockerfile.prod',
            tags: ['1.4.7', '1.4'],
            buildArgs: [VERSION: '1.4.7', DEBUG: false],
            target: 'runtime',
            builder: 'buildkit',
            labels: ['org.opencontainers.image.source': 'https://git.example.com/team/app'],
            pull: true,
            noCache: true,
            cacheFrom: ['registry.example.com/team/app:latest'],
            deployTo: 'container:app',
            healthUrl: 'http://app:8080/health',
            deployTimeout: 120,
            keep: 5,
            credentialsId: 'registry',
            webhookCredentialsId: 'hook',
            config: 'ci/jenkinsctl.yaml',
        ]
        Map schema = new JsonSlurperClassic().parse(new File(repo, 'resources/schemas/steps/dockerBuildPush.json'))
        // failOnError and timeout are the runner's own (x-runner): tested on their own.
        Set<String> runnerKeys = schema.properties.findAll { k, v -> v['x-runner'] }.keySet()
        assert runnerKeys == ['failOnError', 'timeout'] as Set
        Set<String> untested = schema.properties.keySet() - params.keySet() - ['webhookSecretFileCredentialsId'] - runnerKeys
        assert untested.empty: "add ${untested} to this test"

        step('dockerBuildPush', params)

        Map run = onlyRun(agent)
        assert run.params == params
        assert run.env.JENKINSCTL_REGISTRY_USERNAME == 'ci'
        assert run.env.JENKINSCTL_REGISTRY_PASSWORD == 'pa55-Registry-S3cret'
        assert run.env.JENKINSCTL_WEBHOOK_SECRET == 'h00k-T0ken-S3cret'
        List bindings = h.callsTo('withCredentials')[0].args[0]
        assert bindings == [
            [$symbol: 'usernamePassword', credentialsId: 'registry',
             usernameVariable: 'JENKINSCTL_REGISTRY_USERNAME', passwordVariable: 'JENKINSCTL_REGISTRY_PASSWORD'],
            [$symbol: 'string', credentialsId: 'hook', variable: 'JENKINSCTL_WEBHOOK_SECRET'],
        ]
    }

    void testSecretFileCredentialIsAFileOnlyDuringTheRun() {
        String seen = null
        agent.result = { Map params ->
            seen = agent.runs[-1].env.JENKINSCTL_WEBHOOK_SECRET_FILE
            assert new File(seen).text == 'h00k-F1le-S3cret'
            agent.result = null
            [image: 'r.example/app', digest: 'sha256:' + 'c' * 64, tags: ['1'], deploy: null]
        }
        step('dockerBuildPush', [image: 'r.example/app', deployTo: 'webhook:https://deploy.example.com/hook',
                                 webhookSecretFileCredentialsId: 'hook-file'])
        assert seen && !new File(seen).exists()
    }

    void testGStringsAndNullsAreNormalised() {
        h.env.TAG_SUFFIX = 'rc1'
        step('dockerBuildPush', [image: 'r.example/app', tags: ["1.0-${h.env.TAG_SUFFIX}"],
                                 deployTo: h.env.DEPLOY_TO, credentialsId: null])
        assert onlyRun(agent).params == [image: 'r.example/app', tags: ['1.0-rc1']]
        assert h.callsTo('withCredentials')[0].args[0] == []
    }

    void testValuesThatLookLikeShellStayData() {
        String nasty = 'x"; touch /tmp/pwned; echo "$(id)`id`'
        step('dockerBuildPush', [image: 'r.example/app', buildArgs: [NOTE: nasty]])
        assert onlyRun(agent).params.buildArgs.NOTE == nasty
        assert h.shScripts().every { !it.contains('pwned') }
    }

    void testRunsInTheCurrentDirectory() {
        h.binding.getVariable('dir').call('services/api') {
            step('dockerBuildPush', [image: 'r.example/app'])
        }
        assert h.callsTo('sh').size() == 1
        // pwd(tmp: true) inside dir('services/api') is WORKSPACE/services/api@tmp, as in Jenkins.
        assert agent.runs[0].env.JENKINSCTL_RESULT_FILE.startsWith(new File(h.workspace, 'services/api@tmp').path + '/')
    }

    void testUnknownParametersFailBeforeTouchingTheAgent() {
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', imgae: 'x', credentialsID: 'registry', zzz: 1]) }
        assert msg.startsWith('[dockerBuildPush] ')
        assert msg.contains("unknown parameter 'imgae' (did you mean 'image'?)")
        assert msg.contains("unknown parameter 'credentialsID' (did you mean 'credentialsId'?)")
        assert msg.contains("unknown parameter 'zzz' (hint: valid parameters: buildArgs, builder, cacheFrom, config, context,")
                assert h.callsTo('sh').empty
        assert h.callsTo('error').size() == 1
    }

    void testMissingImageIsReportedWithTheOtherProblems() {
        String msg = failure { step('dockerBuildPush', [tag: '1.0']) }
        assert msg.contains("unknown parameter 'tag' (did you mean 'tags'?)")
        assert msg.contains("missing required parameter 'image'")
        assert h.callsTo('sh').empty
    }

    void testNoArgumentsAtAll() {
        String msg = failure { h.binding.getVariable('dockerBuildPush').call() }
        assert msg.startsWith("[dockerBuildPush] missing required parameter 'image'")
    }

    void testJenkinsctlFailureBecomesOneError() {
        agent.failure = [exit: 5, details: [message: 'push to r.example/app was denied: authentication required',
                                            hint: 'check the credentials behind credentialsId',
                                            category: 'registry', exit_code: 5, details: [attempts: 1]]]
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', credentialsId: 'registry']) }
        assert msg == '[dockerBuildPush] push to r.example/app was denied: authentication required ' +
            '(hint: check the credentials behind credentialsId)'
        Map run = onlyRun(agent)
        assert !new File(run.env.JENKINSCTL_ERROR_FILE).exists() // cleaned up
        assert h.callsTo('error').size() == 1
    }

    void testJenkinsctlValidationErrorWithoutHint() {
        agent.failure = [exit: 2, details: [message: "dockerBuildPush: parameter 'pull': 'yes' is not of type 'boolean'",
                                            category: 'config', exit_code: 2]]
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', pull: 'yes']) }
        assert msg == "[dockerBuildPush] dockerBuildPush: parameter 'pull': 'yes' is not of type 'boolean'"
    }

    void testCrashWithoutErrorDetails() {
        agent.crashStatus = 137
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg == '[dockerBuildPush] jenkinsctl ship failed with exit code 137 and left no error details ' +
            '(hint: see its output above)'
    }

    void testSuccessWithoutResultFile() {
        agent.writeResult = false
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('succeeded but wrote no result file')
    }

    static String bump(String version, int index) {
        List<Integer> parts = version.tokenize('.')*.toInteger()
        parts[index] += 1
        return parts.join('.')
    }

    void testAPatchLevelDifferenceIsCompatible() {
        agent.version = bump(libraryVersion(), 2)
        assert step('dockerBuildPush', [image: 'r.example/app']).digest
        assert agent.runs.size() == 1
    }

    void testAMinorLevelDifferenceFailsWithTheDocumentedFix() {
        String v = libraryVersion()
        List<String> p = v.tokenize('.')
        agent.version = bump(v, 1)
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg == "[dockerBuildPush] agent agent-1 has jenkinsctl ${agent.version}, but this library (${v}) " +
            "works only with jenkinsctl ${p[0]}.${p[1]}.x (hint: use agents built for this library: on the host " +
            "that provisions them, with jenkinsctl ${p[0]}.${p[1]}.x, run jenkinsctl agent-image, then jenkinsctl " +
            "apply (it re-creates the agents from the new image); or load the library release that matches the " +
            "agent's jenkinsctl)"
        assert !msg.contains('pip install')
        assert agent.runs.empty
        // the documented message (docs/pipeline-authors.md quotes its start)
        assert new File(repo, 'docs/pipeline-authors.md').text.contains('works only with jenkinsctl')
        agent.version = bump(v, 0)
        assert failure { step('dockerBuildPush', [image: 'r.example/app']) }.contains('works only with')
    }

    void testJenkinsctlNotInstalled() {
        agent.version = null
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.startsWith('[dockerBuildPush] jenkinsctl was not found on agent agent-1 (hint: ')
        assert msg.contains('jenkinsctl agent-image') && msg.contains('jenkinsctl apply') && !msg.contains('pip')
        assert agent.runs.empty
    }

    void testOutsideANodeBlock() {
        h.env.remove('NODE_NAME')
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('must run on an agent')
        assert h.callsTo('sh').empty
    }

    void testWindowsAgent() {
        h.unix = false
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('needs a Linux agent')
        assert h.callsTo('sh').empty
    }

    void testUnknownCredentialsIdFailsLikeJenkins() {
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', credentialsId: 'nope']) }
        assert msg == "Could not find credentials entry with ID 'nope'"
        assert agent.runs.empty
    }

    void testSecretsReachNoCommandLineAndNoLog() {
        agent.failure = [exit: 5, details: [message: 'denied', category: 'registry', exit_code: 5]]
        failure { step('dockerBuildPush', [image: 'r.example/app', credentialsId: 'registry', webhookCredentialsId: 'hook']) }
        String everything = h.calls.toString() + h.logText()
        assert !everything.contains('pa55-Registry-S3cret')
        assert !everything.contains('h00k-T0ken-S3cret')
        assert h.callsTo('sh').every { it.args[0] instanceof Map && it.args[0].script instanceof String }
    }

    void testParallelCallsUseTheirOwnFiles() {
        step('dockerBuildPush', [image: 'r.example/app'])
        step('dockerBuildPush', [image: 'r.example/app2'])
        assert agent.runs[0].env.JENKINSCTL_RESULT_FILE != agent.runs[1].env.JENKINSCTL_RESULT_FILE
    }

    void testTheDocumentedExampleRuns() {
        Map schema = new JsonSlurperClassic().parse(new File(repo, 'resources/schemas/steps/dockerBuildPush.json'))
        h.runScript(schema['x-jenkinsctl'].example)
        assert onlyRun(agent).params.tags == ['1.4.42']
        assert h.log.any { it.startsWith('deployed registry.example.com/team/app@sha256:') }
    }

    void testTruncatedErrorFileFallsBackToTheExitCode() {
        agent.during = { Map params, Map env ->
            new File(env.JENKINSCTL_ERROR_FILE).text = '{"message": "half'
            4
        }
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('failed with exit code 4 and left no error details')
    }

    void testAFailedDeployStillReportsWhatWasPushed() {
        failDeploy()
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', deployTo: 'container:web']) }
        assert msg == '[dockerBuildPush] web did not become healthy (hint: see docker logs web)'
        assert h.log.contains("[dockerBuildPush] before the failure: r.example/app@sha256:${'f' * 64}, deploy to container:web: failed".toString())
        assert h.stepCalls == [[step: 'dockerBuildPush', sh: 1]]
    }

    void failDeploy() {
        agent.during = { Map params, Map env ->
            new File(env.JENKINSCTL_RESULT_FILE).text = groovy.json.JsonOutput.toJson(
                [image: 'r.example/app', digest: 'sha256:' + 'f' * 64, tags: ['7'],
                 deploy: [strategy: 'container', target: 'container:web', outcome: 'failed']])
            new File(env.JENKINSCTL_ERROR_FILE).text = '{"message": "web did not become healthy", "hint": "see docker logs web"}'
            6
        }
    }

    void testFailOnErrorFalseMarksTheBuildUnstableAndReturnsThePartialResult() {
        failDeploy()
        Map result = step('dockerBuildPush', [image: 'r.example/app', deployTo: 'container:web', failOnError: false])
        String msg = '[dockerBuildPush] web did not become healthy (hint: see docker logs web)'
        assert h.callsTo('unstable')*.args*.getAt(0) == [msg]
        assert h.currentBuild.result == 'UNSTABLE'
        assert h.callsTo('error').empty
        assert result.digest == 'sha256:' + 'f' * 64
        assert result.deploy.outcome == 'failed'
        assert result.error == msg
        // the runner's own keys never reach jenkinsctl
        assert onlyRun(agent).params == [image: 'r.example/app', deployTo: 'container:web']
        assert h.stepCalls == [[step: 'dockerBuildPush', sh: 1]]
    }

    void testFailOnErrorFalseWithNothingDone() {
        agent.crashStatus = 137
        Map result = step('dockerBuildPush', [image: 'r.example/app', failOnError: false])
        assert result == [error: '[dockerBuildPush] jenkinsctl ship failed with exit code 137 and left no error ' +
            'details (hint: see its output above)']
        assert h.currentBuild.result == 'UNSTABLE'
    }

    void testFailOnErrorFalseStillFailsOnSetupProblems() {
        agent.version = '9.9.9'
        assert failure { step('dockerBuildPush', [image: 'r.example/app', failOnError: false]) }.contains('works only with')
        assert h.callsTo('unstable').empty
    }

    void testTimeoutBoundsTheWholeStep() {
        step('dockerBuildPush', [image: 'r.example/app', timeout: 30])
        Map t = h.callsTo('timeout')[0]
        assert t.args[0] == [time: 30, unit: 'MINUTES']
        // the credentials, the one sh and the result are all inside the timeout
        int at = h.calls.indexOf(t)
        assert h.calls.findIndexOf { it.name == 'withCredentials' } > at
        assert h.calls.findIndexOf { it.name == 'sh' } > at
        assert onlyRun(agent).params == [image: 'r.example/app']

        h.expireTimeouts = true
        assert failure { step('dockerBuildPush', [image: 'r.example/app', timeout: 1]) } == 'Timeout has been exceeded'
    }

    void testRunnerKeysAreChecked() {
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', failOnError: 'no', timeout: 0]) }
        assert msg.contains("parameter 'failOnError' must be true or false, not 'no'")
        assert msg.contains("parameter 'timeout' must be a whole number of minutes from 1 to 1440, not '0'")
        assert failure { step('dockerBuildPush', [image: 'r.example/app', timeout: 2.5]) }
            .contains("parameter 'timeout' must be a whole number of minutes from 1 to 1440, not '2.5'")
        assert h.callsTo('sh').empty
    }

    void testInsideADockerInsideContainerItStopsWithTheReason() {
        agent.insideContainer = true
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', credentialsId: 'registry']) }
        assert msg.startsWith('[dockerBuildPush] runs on the agent itself, not inside docker.image().inside')
        assert msg.contains("'docker exec --env NAME=VALUE'")
        assert agent.runs.empty
    }

    void testEveryPathIsOneSh() {
        step('dockerBuildPush', [image: 'r.example/app'])
        agent.failure = [exit: 5, details: [message: 'denied']]
        failure { step('dockerBuildPush', [image: 'r.example/app']) }
        step('dockerBuildPush', [image: 'r.example/app', failOnError: false])
        agent.failure = null
        agent.version = '0.0.1'
        failure { step('dockerRedeploy', [image: 'r.example/app:1', deployTo: 'container:web']) }
        assert h.stepCalls*.sh == [1, 1, 1, 1]
        assert h.callsTo('sh').size() == 4
    }
}
