import groovy.json.JsonSlurperClassic

class DockerRedeployTest extends HarnessTest {

    static final String REF = 'registry.example.com/team/app@sha256:' + '4' * 64

    void setUp() {
        super.setUp()
        agent.result = [image: REF, digest: 'sha256:' + '4' * 64,
                        deploy: [strategy: 'swarm', target: 'app_web', outcome: 'updated'],
                        durations: [deploy: 12.5]]
    }

    void testRunsDeployWithTheRequiredParameters() {
        Map result = step('dockerRedeploy', [image: REF, deployTo: 'swarm:app_web'])

        Map run = onlyRun(agent)
        assert run.command == 'deploy'
        assert run.params == [image: REF, deployTo: 'swarm:app_web']
        assert h.callsTo('withCredentials')[0].args[0] == []
        assert result.deploy == [strategy: 'swarm', target: 'app_web', outcome: 'updated']
        assert h.log.contains("[dockerRedeploy] ${REF}@sha256:${'4' * 64}, deploy to swarm:app_web: updated".toString())
    }

    void testEveryParameterReachesJenkinsctl() {
        Map params = [image: REF, deployTo: 'production', healthUrl: 'https://app.example.com/health',
                      deployTimeout: 90.5, keep: 0, credentialsId: 'registry',
                      webhookCredentialsId: 'hook', config: 'ci/jenkinsctl.yaml']
        Map schema = new JsonSlurperClassic().parse(new File(repo, 'resources/schemas/steps/dockerRedeploy.json'))
        // failOnError and timeout are the runner's own (x-runner): tested on their own.
        Set<String> runnerKeys = schema.properties.findAll { k, v -> v['x-runner'] }.keySet()
        assert runnerKeys == ['failOnError', 'timeout'] as Set
        Set<String> untested = schema.properties.keySet() - params.keySet() - ['webhookSecretFileCredentialsId'] - runnerKeys
        assert untested.empty: "add ${untested} to this test"

        step('dockerRedeploy', params)

        Map run = onlyRun(agent)
        assert run.params == params
        assert run.env.JENKINSCTL_REGISTRY_USERNAME == 'ci'
        assert run.env.JENKINSCTL_REGISTRY_PASSWORD == 'pa55-Registry-S3cret'
        assert run.env.JENKINSCTL_WEBHOOK_SECRET == 'h00k-T0ken-S3cret'
    }

    void testBothRequiredParametersAreReportedTogether() {
        String msg = failure { step('dockerRedeploy', [imag: REF]) }
        assert msg.startsWith("[dockerRedeploy] unknown parameter 'imag' (did you mean 'image'?); " +
                              "missing required parameter 'image'; missing required parameter 'deployTo'")
        assert msg.contains('(hint: valid parameters: config, credentialsId, deployTimeout, deployTo, failOnError, healthUrl, image,')
        assert h.callsTo('sh').empty
    }

    void testFailedDeployBecomesOneError() {
        agent.failure = [exit: 6, details: [message: 'app_web did not become healthy within 60s; rolled back to the previous version',
                                            hint: "see 'docker service ps app_web'", category: 'deploy', exit_code: 6]]
        String msg = failure { step('dockerRedeploy', [image: REF, deployTo: 'swarm:app_web']) }
        assert msg == '[dockerRedeploy] app_web did not become healthy within 60s; rolled back to the previous version ' +
            "(hint: see 'docker service ps app_web')"
    }

    void testVersionMismatch() {
        agent.version = '9.9.9'
        String msg = failure { step('dockerRedeploy', [image: REF, deployTo: 'swarm:app_web']) }
        assert msg.startsWith('[dockerRedeploy] agent agent-1 has jenkinsctl 9.9.9, but this library')
        assert agent.runs.empty
    }

    void testTheDocumentedExampleRuns() {
        Map schema = new JsonSlurperClassic().parse(new File(repo, 'resources/schemas/steps/dockerRedeploy.json'))
        h.binding.setVariable('shipped', [digest: 'sha256:' + '4' * 64])
        h.binding.setVariable('input', { Object[] a -> null })
        h.runScript(schema['x-jenkinsctl'].example)
        assert onlyRun(agent).params == [image: REF, deployTo: 'swarm:app_web', credentialsId: 'registry']
    }
}
