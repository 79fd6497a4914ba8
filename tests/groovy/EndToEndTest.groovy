import groovy.json.JsonOutput

/**
 * The whole chain with nothing stubbed below the pipeline: Groovy steps ->
 * a real sh -> jenkinsctl -> the real engine -> a real registry with
 * htpasswd auth -> a container redeploy of examples/webapp, checked with an
 * HTTP GET. withCredentials exposes the registry password as environment
 * variables exactly as Jenkins does, and the test checks that it shows up in
 * no sh command line and no output.
 *
 * Driven by tests/steps/test_steps_e2e.py, which starts the registry and
 * passes it in JENKINSCTL_E2E_* variables (run.groovy runs this class only
 * with --e2e).
 */
class EndToEndTest extends HarnessTest {

    Map e2e

    void setUp() {
        super.setUp()
        Map<String, String> env = System.getenv()
        if (!env.JENKINSCTL_E2E_REGISTRY) {
            throw new SkipTest('needs JENKINSCTL_E2E_* (run: pytest tests/steps/test_steps_e2e.py)')
        }
        e2e = [registry: env.JENKINSCTL_E2E_REGISTRY, username: env.JENKINSCTL_E2E_USERNAME,
               password: env.JENKINSCTL_E2E_PASSWORD, port: env.JENKINSCTL_E2E_APP_PORT as int,
               project: env.JENKINSCTL_E2E_PROJECT, out: env.JENKINSCTL_E2E_OUT]
        h.realShell = true
        h.echoLog = env.JENKINSCTL_E2E_VERBOSE == '1'
        h.credentials['registry'] = [type: 'usernamePassword', username: e2e.username, password: e2e.password]
        h.credentials['wrong'] = [type: 'usernamePassword', username: e2e.username, password: 'not-' + e2e.password]

        // The workspace a checkout would give: the example app and a config
        // that names the deploy target, published on 127.0.0.1 only.
        Process cp = ['cp', '-R', new File(repo, 'examples/webapp').path, new File(h.workspace, 'app').path].execute()
        assert cp.waitFor() == 0
        new File(h.workspace, 'jenkinsctl.yaml').text = """\
            version: 1
            project: ${e2e.project}
            registry:
              url: "${e2e.registry}"
            deploy:
              targets:
                web:
                  strategy: container
                  target: ${e2e.project}-web
                  ports: ["127.0.0.1:${e2e.port}:8080"]
                  health:
                    timeout: 90
            """.stripIndent()
    }

    Map ship(String version, Map extra = [:]) {
        return step('dockerBuildPush', [
            image: "${e2e.registry}/e2e/webapp",
            context: 'app',
            tags: ["e2e-${version}"],
            buildArgs: [APP_VERSION: version],
            // Not the shared io.jenkinsctl.test label: containers inherit image
            // labels, and other test sessions on the engine remove those.
            labels: ['io.jenkinsctl.e2e': e2e.project],
            deployTo: 'web',
            credentialsId: 'registry',
            config: 'jenkinsctl.yaml',
        ] + extra)
    }

    String served() {
        URL url = new URL("http://127.0.0.1:${e2e.port}/version")
        long deadline = System.currentTimeMillis() + 15000
        while (true) {
            try {
                return url.getText(connectTimeout: 2000, readTimeout: 5000).trim()
            } catch (IOException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e
                }
                Thread.sleep(250)
            }
        }
    }

    void testBuildPushRedeployAndPromoteThroughARealShell() {
        Map first = ship('1.0.1')
        assert first.image == "${e2e.registry}/e2e/webapp".toString()
        assert first.digest ==~ /sha256:[0-9a-f]{64}/
        assert 'e2e-1.0.1' in first.tags
        assert first.deploy.strategy == 'container'
        assert served() == '1.0.1'

        Map second = ship('1.0.2')
        assert second.digest != first.digest
        assert second.deploy.outcome == 'deployed'
        assert served() == '1.0.2'

        // A promotion stage: redeploy an earlier build by digest.
        Map promoted = step('dockerRedeploy', [image: "${e2e.registry}/e2e/webapp@${first.digest}",
                                               deployTo: 'web', credentialsId: 'registry',
                                               config: 'jenkinsctl.yaml'])
        assert promoted.digest == first.digest
        assert served() == '1.0.1'

        // A wrong password fails the build with jenkinsctl's message and
        // hint, and the version that runs keeps serving.
        String msg = failure { ship('1.0.3', [credentialsId: 'wrong', deployTo: null]) }
        assert msg.startsWith('[dockerBuildPush] ')
        assert msg.contains('(hint: ')
        assert served() == '1.0.1'

        // What Jenkins would record and show: every sh script is constant,
        // and no secret appears in a command line or in the log.
        assert h.callsTo('sh').every { it.args[0].script instanceof String }
        String recorded = h.calls.toString()
        String log = h.logText()
        [e2e.password, 'not-' + e2e.password].each { String secret ->
            assert !recorded.contains(secret)
            assert !log.contains(secret)
        }
        assert log.contains('+ jenkinsctl --params-env JENKINSCTL_PARAMS --error-file ')

        new File(e2e.out).text = JsonOutput.toJson([first: first, second: second, promoted: promoted, error: msg])
    }
}
