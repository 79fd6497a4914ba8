import groovy.json.JsonSlurperClassic

class DockerBuildPushTest extends HarnessTest {

    static final String RUN = 'jenkinsctl --params-env JENKINSCTL_PARAMS --error-file "$JENKINSCTL_ERROR_FILE" ' +
        '"$JENKINSCTL_COMMAND" --result "$JENKINSCTL_RESULT_FILE"'

    void testDefaultsSendOnlyWhatTheAuthorGave() {
        Map result = step('dockerBuildPush', [image: 'registry.example.com/team/app'])

        Map run = onlyRun(agent)
        assert run.command == 'ship'
        assert run.params == [image: 'registry.example.com/team/app']
        assert h.shScripts() == ['jenkinsctl --version 2>/dev/null || true', RUN,
                                 'rm -f -- "$JENKINSCTL_RESULT_FILE" "$JENKINSCTL_ERROR_FILE"']
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
        Set<String> untested = schema.properties.keySet() - params.keySet() - ['webhookSecretFileCredentialsId']
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
        assert h.callsTo('sh').size() == 3
        assert agent.runs[0].env.JENKINSCTL_RESULT_FILE.startsWith(h.tmpDir.path)
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

    void testVersionMismatchFailsWithAFix() {
        agent.version = '0.0.9'
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        String v = libraryVersion()
        assert msg.startsWith("[dockerBuildPush] agent agent-1 has jenkinsctl 0.0.9 but this library needs jenkinsctl ${v}")
        assert msg.contains("pip install 'jenkinsctl==${v}'")
        assert agent.runs.empty
    }

    void testJenkinsctlNotInstalled() {
        agent.version = null
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.startsWith('[dockerBuildPush] jenkinsctl was not found on agent agent-1 (hint: ')
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
        agent.handler()
        h.shHandler = { Map call ->
            if (call.script.startsWith('jenkinsctl --params-env')) {
                new File(call.env.JENKINSCTL_ERROR_FILE).text = '{"message": "half'
                return 4
            }
            agent.handle(call)
        }
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('failed with exit code 4 and left no error details')
    }

    void testAFailedDeployStillReportsWhatWasPushed() {
        h.shHandler = { Map call ->
            if (call.script.startsWith('jenkinsctl --params-env')) {
                new File(call.env.JENKINSCTL_RESULT_FILE).text = groovy.json.JsonOutput.toJson(
                    [image: 'r.example/app', digest: 'sha256:' + 'f' * 64, tags: ['7'],
                     deploy: [strategy: 'container', target: 'container:web', outcome: 'failed']])
                new File(call.env.JENKINSCTL_ERROR_FILE).text = '{"message": "web did not become healthy", "category": "deploy"}'
                return 6
            }
            agent.handle(call)
        }
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app', deployTo: 'container:web']) }
        assert msg == '[dockerBuildPush] web did not become healthy'
        assert h.log.contains("[dockerBuildPush] before the failure: r.example/app@sha256:${'f' * 64}, deploy to container:web: failed".toString())
    }
}
