import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.expr.ClassExpression
import org.codehaus.groovy.ast.expr.ConstructorCallExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.PropertyExpression
import org.codehaus.groovy.ast.expr.StaticMethodCallExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit

/**
 * The library runs untrusted (in the Groovy sandbox) when a Jenkinsfile
 * loads it with legacySCM(scm) or at folder level. The sandbox allows what
 * script-security's generic-whitelist lists; anything else waits for an
 * administrator's script approval. This test reads vars/ with the compiler
 * and checks every import, constructor, static method and static field it
 * uses against the whitelist entries below (copied as signatures from
 * jenkinsci/script-security-plugin, src/main/resources/org/jenkinsci/plugins/
 * scriptsecurity/sandbox/whitelists/generic-whitelist). Instance methods on
 * Strings, Maps and Lists are the whitelist's common ones and are not
 * checked here.
 */
class SandboxTest extends HarnessTest {

    /** CLASS.MEMBER -> the generic-whitelist entry that allows it. */
    static final Map<String, String> ALLOWED = [
        'java.util.UUID.randomUUID': 'staticMethod java.util.UUID randomUUID',
        'groovy.json.JsonOutput.toJson': 'staticMethod groovy.json.JsonOutput toJson java.util.Map',
        'java.lang.Math.max': 'staticMethod java.lang.Math max int int',
        'java.lang.Math.min': 'staticMethod java.lang.Math min int int',
        'java.lang.Integer.parseInt': 'staticMethod java.lang.Integer parseInt java.lang.String',
        'java.lang.Integer.MAX_VALUE': 'staticField java.lang.Integer MAX_VALUE',
    ]
    /** Imports that are annotations or whitelisted classes. */
    static final Set<String> IMPORTS = ['com.cloudbees.groovy.cps.NonCPS', 'groovy.transform.Field',
                                        'groovy.json.JsonOutput'] as Set

    static Map<String, List<String>> uses(File f) {
        CompilationUnit cu = new CompilationUnit(new CompilerConfiguration(), null, new GroovyClassLoader(SandboxTest.classLoader))
        SourceUnit su = cu.addSource(f.name, f.text)
        cu.compile(Phases.SEMANTIC_ANALYSIS)
        ModuleNode module = su.AST
        Map<String, List<String>> found = [imports: module.imports*.type*.name, members: [], constructors: []]
        ClassCodeVisitorSupport v = new ClassCodeVisitorSupport() {
            protected SourceUnit getSourceUnit() { su }

            void visitMethodCallExpression(MethodCallExpression call) {
                if (call.objectExpression instanceof ClassExpression && call.lineNumber > 0) {
                    found.members << "${call.objectExpression.type.name}.${call.methodAsString}".toString()
                }
                super.visitMethodCallExpression(call)
            }

            void visitStaticMethodCallExpression(StaticMethodCallExpression call) {
                if (call.ownerType.name != module.classes[0].name && call.lineNumber > 0) {
                    found.members << "${call.ownerType.name}.${call.method}".toString()
                }
                super.visitStaticMethodCallExpression(call)
            }

            void visitPropertyExpression(PropertyExpression e) {
                if (e.objectExpression instanceof ClassExpression && e.lineNumber > 0) {
                    found.members << "${e.objectExpression.type.name}.${e.propertyAsString}".toString()
                }
                super.visitPropertyExpression(e)
            }

            void visitConstructorCallExpression(ConstructorCallExpression call) {
                // lineNumber -1: the script class's generated constructor
                if (call.lineNumber > 0) {
                    found.constructors << call.type.name
                }
                super.visitConstructorCallExpression(call)
            }
        }
        module.classes.each { v.visitClass(it) }
        return found
    }

    List<File> vars() {
        return new File(repo, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort()
    }

    void testVarsUseOnlyWhatTheSandboxAllows() {
        Set<String> seen = [] as Set
        vars().each { File f ->
            Map<String, List<String>> u = uses(f)
            assert (u.imports - IMPORTS).empty: "${f.name} imports ${u.imports - IMPORTS}: not whitelisted"
            assert u.constructors.empty: "${f.name} constructs ${u.constructors}: needs script approval"
            assert (u.members - ALLOWED.keySet()).empty:
                "${f.name} uses ${u.members - ALLOWED.keySet()}: not in the sandbox's generic whitelist"
            seen.addAll(u.members)
        }
        // The list is what the library uses, no more.
        assert seen == ALLOWED.keySet()
    }

    void testTheScanSeesWhatTheSandboxWouldBlock() {
        File bad = new File(h.root, 'bad.groovy')
        bad.text = '''
            import groovy.json.JsonSlurperClassic
            Map call() {
                String t = System.getenv('HOME')
                return new JsonSlurperClassic().parseText(t) + [x: Runtime.runtime]
            }
        '''
        Map<String, List<String>> u = uses(bad)
        assert u.imports == ['groovy.json.JsonSlurperClassic']
        assert u.constructors == ['groovy.json.JsonSlurperClassic']
        assert u.members.containsAll(['java.lang.System.getenv', 'java.lang.Runtime.runtime'])
    }
}
