/**
 * The pipelines pipeline authors copy: every groovy block of
 * docs/pipeline-authors.md and the library's own Jenkinsfile run in the
 * harness, and every parameter Map they hand to jenkinsctl passes
 * jenkinsctl's own validation (python -m jenkinsctl.steps, same schema).
 */
class DocsExamplesTest extends HarnessTest {

    void setUp() {
        super.setUp()
        h.declarative = true
        h.shHandler = { Map call ->
            String s = call.script
            s.contains('jenkinsctl --params-env') ? agent.handle(call) : 0
        }
        agent.result = { Map params ->
            [image: params.image?.split('@')[0], digest: 'sha256:' + 'e' * 64, tags: params.tags ?: [],
             deploy: params.deployTo ? [strategy: 'container', target: 'x', outcome: 'deployed'] : null]
        }
    }

    static List<String> examples() {
        String md = new File(repo, 'docs/pipeline-authors.md').text
        return (md =~ /(?s)```groovy\n(.*?)```/).collect { it[1] as String }
    }

    /** Check the recorded parameters with jenkinsctl's validator, as the agent would. */
    void assertJenkinsctlAccepts(List<Map> runs) {
        runs.each { Map run ->
            String json = groovy.json.JsonOutput.toJson(run.params)
            Process p = ['python3', '-c',
                         'import json, sys\n' +
                         'from jenkinsctl.steps import params_to_defaults\n' +
                         'params_to_defaults(sys.argv[1], json.loads(sys.argv[2]))',
                         run.command as String, json].execute(null, repo)
            StringBuilder out = new StringBuilder()
            p.waitForProcessOutput(out, out)
            assert p.exitValue() == 0: "jenkinsctl ${run.command} rejects ${json}:\n${out}"
        }
    }

    void testTheDocsHaveExamples() {
        assert examples().size() >= 5
    }

    void testEveryExampleRunsAndPassesValidation() {
        int total = 0
        examples().each { String code ->
            agent.runs.clear()
            h.runScript(code.replaceAll(/@Library\([^)]*\)\s+_/, ''))
            assertJenkinsctlAccepts(agent.runs)
            total += agent.runs.size()
        }
        assert total == 6 // intro, build+push, ship+redeploy, build+promote (two), failOnError
    }

    void testTheWorkedExamplesShipAndPromote() {
        List<String> ex = examples()
        h.runScript(ex.find { it.contains("deployTo: 'swarm:production_app'") }.replaceAll(/@Library\([^)]*\)\s+_/, ''))
        assert agent.runs*.command == ['ship', 'deploy']
        assert agent.runs[1].params.image == 'registry.example.com/team/app@sha256:' + 'e' * 64
    }

    void testTheLibrarysJenkinsfileChecksAndShipsOnAnAgent() {
        h.runScript(new File(repo, 'Jenkinsfile').text)
        // only what a jenkinsctl agent can run: no scripts/test (root, groovy, npm, a registry)
        List<String> own = h.shScripts().findAll { !it.contains('jenkinsctl --params-env') }
        assert own == ['scripts/agent-check', 'scripts/stage-agent-context build/agent-context',
                       'rm -rf build/agent-context']
        assert own.every { !it.contains('scripts/test') && !it.contains('.venv') && !it.contains('sudo') }
        assert agent.runs*.params*.image == ['127.0.0.1:5000/jenkinsctl/webapp', '127.0.0.1:5000/jenkinsctl/agent']
        Map example = agent.runs[0].params
        assert example.context == 'examples/webapp' && example.credentialsId == 'registry'
        assert example.tags == ['ci-42']
        Map params = agent.runs[1].params
        assert params.context == 'build/agent-context'
        assert params.tags == ['42-local']
        assert h.currentBuild.description == "agent 127.0.0.1:5000/jenkinsctl/agent@sha256:${'e' * 64}".toString()
        assert h.stepCalls*.sh == [1, 1]
        assertJenkinsctlAccepts(agent.runs)
        // the options it uses exist on the provisioned controller
        assert h.callsTo('timestamps').size() == 1
    }

    void testTheHarnessRejectsAnOptionWhosePluginIsNotInstalled() {
        h.installedPlugins.remove('timestamper')
        String msg = failure { h.runScript(new File(repo, 'Jenkinsfile').text) }
        assert msg == 'Invalid option type "timestamps": plugin timestamper is not in resources/controller/plugins.txt'
        try {
            h.runScript('pipeline { options { timestampz() } }')
            assert false: 'an option no plugin provides must fail'
        } catch (MissingMethodException e) {
            assert e.method == 'timestampz'
        }
        assert failure { h.runScript("pipeline { options { echo 'x' } }") } == 'Invalid option type "echo"'
    }

    void testThePyappExampleRuns() {
        // properties, parameters, booleanParam and checkout: generic steps, checked against the plugin table
        h.binding.setVariable('params', [BREAK_HEALTH: false])
        h.env.PYAPP_REGISTRY = '127.0.0.1:5000'
        new File(h.workspace, 'examples/pyapp').mkdirs()
        new File(h.workspace, 'examples/pyapp/VERSION').text = '2.0.0\n'
        agent.result = { Map p -> [image: p.image, digest: 'sha256:' + 'c' * 64, tags: p.tags,
                                   deploy: [strategy: 'stack', target: 'stack:pyapp', outcome: 'deployed']] }
        h.runScript(new File(repo, 'examples/pyapp/Jenkinsfile').text.replaceAll(/@Library\([^)]*\)\s+_/, ''))
        assert agent.runs*.params == [[image: '127.0.0.1:5000/pyapp/web', credentialsId: 'registry',
                                       tags: ['2.0.0-42'], buildArgs: [APP_VERSION: '2.0.0', APP_HEALTH: 'ok'],
                                       deployTo: 'stack:pyapp']]
        assert h.stepCalls*.sh == [1]
        assert ['properties', 'parameters', 'booleanParam', 'checkout'].every { h.callsTo(it).size() == 1 }
        assertJenkinsctlAccepts(agent.runs)
    }
}
