import groovy.json.JsonSlurperClassic
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ConstantExpression

/**
 * Conventions every step of the library keeps (Piper's CommonStepsTest):
 * call(Map), a generated .txt, everything through the runner, and no value
 * (least of all a secret) spliced into a shell string.
 */
class StepConventionsTest extends HarnessTest {

    static final String RUNNER = 'jenkinsctlRun'

    static List<String> steps() {
        return new File(repo, 'vars').list().findAll { it.endsWith('.groovy') }
            .collect { it - '.groovy' }.findAll { it != RUNNER }.sort()
    }

    static Map schema(String step) {
        return new JsonSlurperClassic().parse(new File(repo, "resources/schemas/steps/${step}.json"))
    }

    /** Pipeline code the library owns: vars/ and its own Jenkinsfile. */
    static List<File> pipelineSources() {
        List<File> files = new File(repo, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort()
        File jenkinsfile = new File(repo, 'Jenkinsfile')
        return jenkinsfile.exists() ? files + [jenkinsfile] : files
    }

    void testThereAreSteps() {
        assert steps() == ['dockerBuildPush', 'dockerRedeploy']
    }

    void testEveryStepHasASchemaAndEverySchemaAStep() {
        List<String> schemas = new File(repo, 'resources/schemas/steps').list()
            .findAll { it.endsWith('.json') }.collect { it - '.json' }.sort()
        assert schemas == steps()
        steps().each { assert schema(it).title == it }
    }

    void testEveryStepIsCallMap() {
        steps().each { String step ->
            SourceScan scan = new SourceScan(new File(repo, "vars/${step}.groovy"))
            List<MethodNode> calls = scan.scriptClass.methods.findAll { it.name == 'call' }
            assert calls.size() == 1: "${step}: exactly one call method"
            assert calls[0].parameters*.type*.name == ['java.util.Map']: "${step}: call(Map)"
            List<String> others = scan.scriptClass.methods*.name - ['call', 'run', 'main']
            assert others.empty: "${step}: keep logic out of the step (found ${others})"
        }
    }

    void testEveryStepHasItsGeneratedTxt() {
        steps().each { String step ->
            File txt = new File(repo, "vars/${step}.txt")
            assert txt.exists(): "vars/${step}.txt is missing: run python -m jenkinsctl.steps --write-docs"
            String text = txt.text
            assert text.contains("Generated from resources/schemas/steps/${step}.json")
            schema(step).properties.each { name, prop ->
                assert text.contains("<dt><code>${name}</code>"): "vars/${step}.txt does not document ${name}"
            }
        }
    }

    void testEveryStepGoesThroughTheRunner() {
        steps().each { String step ->
            SourceScan scan = new SourceScan(new File(repo, "vars/${step}.groovy"))
            def runs = scan.callsTo(RUNNER)
            assert runs.size() == 1: "${step} must call ${RUNNER} once"
            def first = runs[0].arguments.expressions[0]
            assert first instanceof ConstantExpression && first.value == step
            assert scan.callsTo('sh').empty && scan.callsTo('withCredentials').empty
        }
    }

    void testEveryStepHandsItsMapToTheRunnerAndReturnsTheResult() {
        steps().each { String step ->
            List seen = []
            Map marker = [marker: step]
            h.binding.setVariable(RUNNER, { String name, Map params -> seen << [name, params]; marker })
            Map params = [:]
            schema(step).required.each { params[it] = schema(step).properties[it].examples[0] }
            assert h.binding.getVariable(step).call(params).is(marker)
            assert seen == [[step, params]]
        }
    }

    void testNoShInterpolatesAValue() {
        List<String> problems = pipelineSources().collectMany { new SourceScan(it).shProblems }
        assert problems.empty
    }

    void testNoStringMentionsACredentialVariableThroughGroovy() {
        Set<String> secrets = [] as Set
        steps().each { step ->
            schema(step).properties.each { name, prop ->
                Map c = prop['x-credential']
                if (c) {
                    secrets.addAll([c.usernameVariable, c.passwordVariable, c.variable].findAll())
                }
            }
        }
        assert secrets.contains('JENKINSCTL_REGISTRY_PASSWORD')
        pipelineSources().each { File f ->
            f.eachLine { String line, int n ->
                secrets.each { String v ->
                    assert !(line =~ /\$\{?(env\.)?${v}/) || !line.contains('"'):
                        "${f.name}:${n}: ${v} inside a double-quoted (interpolated) string"
                }
            }
        }
    }

    void testNonCpsMethodsCallNoSteps() {
        List<String> problems = pipelineSources().collectMany { new SourceScan(it).nonCpsProblems }
        assert problems.empty
    }

    void testTheScanCatchesWhatItShould() {
        File bad = new File(h.root, 'bad.groovy')
        bad.text = '''
            import com.cloudbees.groovy.cps.NonCPS
            @groovy.transform.Field static final String OK = 'echo ' + 'fine'
            @groovy.transform.Field String notFinal = 'x'
            void call(Map p) {
                sh 'echo fine'
                sh(script: OK)
                sh "docker login -p ${env.JENKINSCTL_REGISTRY_PASSWORD}"
                sh(script: notFinal, returnStatus: true)
                final String fine = OK
                String changeable = OK
                sh(script: fine)
                sh(script: changeable)
            }
            @NonCPS
            String helper() { echo 'no' }
        '''
        SourceScan scan = new SourceScan(bad)
        assert scan.shProblems.size() == 3
        assert scan.shProblems[0].contains('interpolates')
        assert scan.shProblems[1].contains('not a constant string (notFinal)')
        assert scan.shProblems[2].contains('not a constant string (changeable)')
        assert scan.nonCpsProblems == ['bad.groovy:16: @NonCPS helper calls the step echo']
    }

    void testLibraryVersionIsThePackageVersion() {
        String py = new File(repo, 'jenkinsctl/__init__.py').text
        String pkg = (py =~ /__version__ = "([^"]+)"/)[0][1]
        assert libraryVersion() == pkg
    }

    void testTheLibrarysOwnJenkinsfileUsesThisCheckoutAndValidParameters() {
        File jf = new File(repo, 'Jenkinsfile')
        SourceScan scan = new SourceScan(jf)
        def lib = scan.callsTo('library')
        assert lib.size() == 1
        String libText = lib[0].arguments.text
        assert libText.contains('identifier') && libText.contains('jenkinsctl@') && libText.contains('legacySCM(scm)')
        assert jf.text =~ /agent \{ label 'docker' \}/
        assert jf.text.contains("sh 'scripts/agent-check'") && !jf.text.contains("sh 'scripts/test'")
        def ships = scan.callsTo('dockerBuildPush')
        assert ships.size() == 2
        ships.each { call ->
            Set<String> keys = call.arguments.expressions[0].mapEntryExpressions*.keyExpression*.text as Set
            assert keys.contains('image') && keys.contains('credentialsId')
            assert (keys - schema('dockerBuildPush').properties.keySet()).empty
        }
    }
}
