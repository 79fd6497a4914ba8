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
            s.startsWith('jenkinsctl ') || s.startsWith('rm -f') ? agent.handle(call) : 0
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
        assert total == 5 // intro, build+push, ship+redeploy, and build+promote (two)
    }

    void testTheWorkedExamplesShipAndPromote() {
        List<String> ex = examples()
        h.runScript(ex.find { it.contains("deployTo: 'swarm:production_app'") }.replaceAll(/@Library\([^)]*\)\s+_/, ''))
        assert agent.runs*.command == ['ship', 'deploy']
        assert agent.runs[1].params.image == 'registry.example.com/team/app@sha256:' + 'e' * 64
    }

    void testTheLibrarysJenkinsfileShipsTheAgentImage() {
        h.runScript(new File(repo, 'Jenkinsfile').text)
        assert h.shScripts().contains('scripts/test')
        assert agent.runs.size() == 1
        Map params = agent.runs[0].params
        assert params.image == '127.0.0.1:5000/jenkinsctl/agent'
        assert params.credentialsId == 'registry'
        assert params.context == 'build/agent-context'
        assert params.tags == ['42-local']
        assert h.currentBuild.description == "agent 127.0.0.1:5000/jenkinsctl/agent@sha256:${'e' * 64}".toString()
        assertJenkinsctlAccepts(agent.runs)
    }
}
