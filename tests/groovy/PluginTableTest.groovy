import groovy.json.JsonSlurperClassic
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit

/**
 * Every step, Declarative option and global that the library (vars/) and
 * both Jenkinsfiles use is provided by a plugin that the controller
 * jenkinsctl provisions installs (resources/controller/plugins.txt, NAME or
 * NAME:VERSION lines), per the one table resources/schemas/pipeline-plugins.json.
 * Without this, Declarative rejects a whole pipeline before any stage
 * ("Invalid option type"), and a scripted one fails at the first unknown step.
 */
class PluginTableTest extends HarnessTest {

    static final List<String> SOURCES = ['Jenkinsfile', 'examples/pyapp/Jenkinsfile']
    static final Set<String> GLOBALS = ['env', 'params', 'currentBuild', 'scm'] as Set

    Map<String, Map> table() {
        return new JsonSlurperClassic().parse(new File(repo, 'resources/schemas/pipeline-plugins.json')).names as Map
    }

    static List<File> sources() {
        List<File> vars = new File(repo, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort()
        return vars + SOURCES.collect { new File(repo, it) }
    }

    /** Names called as steps (implicit this) and globals read, minus the script's own methods. */
    static Set<String> used(File f) {
        CompilationUnit cu = new CompilationUnit(new CompilerConfiguration(), null,
                                                 new GroovyClassLoader(PluginTableTest.classLoader))
        // @Library is resolved by Jenkins before compiling; the harness has no such class.
        String text = f.text.replaceAll(/@Library\([^)]*\)\s+_/, '')
        SourceUnit su = cu.addSource(f.name.endsWith('.groovy') ? f.name : f.name + '.groovy', text)
        cu.compile(Phases.SEMANTIC_ANALYSIS)
        Set<String> own = su.AST.classes.collectMany { it.methods*.name } as Set
        Set<String> names = [] as Set
        ClassCodeVisitorSupport v = new ClassCodeVisitorSupport() {
            protected SourceUnit getSourceUnit() { su }

            void visitMethodCallExpression(MethodCallExpression call) {
                if (call.implicitThis && call.lineNumber > 0) {
                    names << call.methodAsString
                }
                super.visitMethodCallExpression(call)
            }

            void visitVariableExpression(VariableExpression e) {
                if (e.name in GLOBALS) {
                    names << e.name
                }
                super.visitVariableExpression(e)
            }
        }
        su.AST.classes.each { v.visitClass(it) }
        Set<String> library = new File(repo, 'vars').list().findAll { it.endsWith('.groovy') }
            .collect { it - '.groovy' } as Set
        return names - own - library
    }

    void testEveryUsedNameIsProvidedByAnInstalledPlugin() {
        Map<String, Map> t = table()
        Set<String> installed = PipelineHarness.pluginsTxt(new File(repo, 'resources/controller/plugins.txt'))
        List<String> problems = []
        sources().each { File f ->
            used(f).sort().each { String name ->
                Map e = t[name]
                if (e == null) {
                    problems << "${f.name}: ${name} is not in resources/schemas/pipeline-plugins.json".toString()
                } else if ((e.via ?: e.plugin) != 'core' && !((e.via ?: e.plugin) in installed)) {
                    problems << "${f.name}: ${name} needs plugin ${e.via ?: e.plugin}, not in plugins.txt".toString()
                }
            }
        }
        assert problems.empty
    }

    void testTheTableCoversWhatTheLibraryNeeds() {
        Set<String> used = sources().collectMany { used(it) } as Set
        assert used.containsAll(['sh', 'withCredentials', 'readJSON', 'unstable', 'timeout', 'libraryResource',
                                 'timestamps', 'library', 'legacySCM', 'checkout', 'properties'])
        Map<String, Map> t = table()
        assert t.withCredentials.plugin == 'credentials-binding' && !t.withCredentials.via
        assert t.readJSON.plugin == 'pipeline-utility-steps' && !t.readJSON.via
        assert t.timestamps.plugin == 'timestamper' && 'option' in t.timestamps.as
        t.each { name, e ->
            assert e.plugin && e.as: "${name}: needs plugin and as"
            assert (e.as as List).every { it in ['step', 'option', 'directive', 'agent', 'condition', 'when', 'input', 'global'] }
        }
    }

    void testPluginsTxtIsReadWithOrWithoutVersions() {
        File f = new File(h.root, 'plugins.txt')
        f.text = '# a comment\ncredentials-binding:681.vf91669a_32e45\n\ntimestamper   # why\ngit:5.7.0\n'
        assert PipelineHarness.pluginsTxt(f) == ['credentials-binding', 'timestamper', 'git'] as Set
    }

    void testTheScanFindsAMissingPlugin() {
        File f = new File(h.root, 'Jenkinsfile')
        f.text = "node { ansiColor('xterm') { sh 'make' }; echo env.X }"
        assert used(f) == ['node', 'ansiColor', 'sh', 'echo', 'env'] as Set
        assert table().ansiColor == null
    }
}
