/**
 * Base of every Groovy test class: a fresh harness with the library loaded
 * and a FakeJenkinsctl of the library's own version as the agent.
 */
abstract class HarnessTest {

    static File repo = new File(System.getProperty('jenkinsctl.repo', '.')).canonicalFile

    PipelineHarness h
    FakeJenkinsctl agent

    void setUp() {
        h = new PipelineHarness(repo).loadVars()
        agent = new FakeJenkinsctl(libraryVersion())
        h.shHandler = agent.handler()
        h.credentials['registry'] = [type: 'usernamePassword', username: 'ci', password: 'pa55-Registry-S3cret']
        h.credentials['hook'] = [type: 'string', secret: 'h00k-T0ken-S3cret']
        h.credentials['hook-file'] = [type: 'file', secret: 'h00k-F1le-S3cret']
    }

    void tearDown() {
        try {
            // Every library step call runs at most one durable-task sh.
            assert h == null || h.stepCalls.every { it.sh <= 1 }: "more than one sh in a step call: ${h.stepCalls}"
        } finally {
            h?.cleanup()
        }
    }

    static String libraryVersion() {
        return new File(repo, 'resources/io/jenkinsctl/version.txt').text.trim()
    }

    /** Call a step the way a Jenkinsfile does. */
    Object step(String name, Map params) {
        return h.binding.getVariable(name).call(params)
    }

    /** Run code that must fail the build; returns the error() message. */
    static String failure(Closure body) {
        try {
            body.call()
        } catch (PipelineError e) {
            return e.message
        }
        throw new AssertionError('expected the build to fail, but it passed')
    }

    static Map onlyRun(FakeJenkinsctl agent) {
        assert agent.runs.size() == 1
        return agent.runs[0]
    }
}
