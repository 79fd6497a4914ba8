import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.FieldNode
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit

/**
 * Reads pipeline code with the Groovy compiler (up to semantic analysis, so
 * @Field constants are real fields) and answers the convention questions:
 * which methods exist, what every sh gets, what @NonCPS methods call.
 */
class SourceScan {

    /** Pipeline steps that must not be called from @NonCPS code. */
    static final Set<String> STEPS = ['sh', 'bat', 'echo', 'error', 'readFile', 'writeFile', 'fileExists',
        'withEnv', 'withCredentials', 'libraryResource', 'isUnix', 'pwd', 'dir', 'node', 'stage',
        'usernamePassword', 'string', 'file', 'input', 'sleep', 'timeout', 'retry'] as Set

    final File file
    final ClassNode scriptClass
    final List<MethodCallExpression> calls = []
    final List<String> shProblems = []
    final List<String> nonCpsProblems = []
    /** final local variables -> their initial value */
    final Map<String, Expression> finalLocals = [:]

    SourceScan(File file) {
        this.file = file
        CompilationUnit cu = new CompilationUnit(new CompilerConfiguration(), null,
                                                 new GroovyClassLoader(SourceScan.classLoader))
        SourceUnit su = cu.addSource(file.name.endsWith('.groovy') ? file.name : file.name + '.groovy', file.text)
        cu.compile(Phases.SEMANTIC_ANALYSIS)
        scriptClass = su.AST.classes[0]
        Visitor v = new Visitor(this, su)
        su.AST.classes.each { v.visitClass(it) }
    }

    MethodNode method(String name) {
        return scriptClass.methods.find { it.name == name }
    }

    List<MethodCallExpression> callsTo(String name) {
        return calls.findAll { it.implicitThis && it.methodAsString == name }
    }

    /** A constant, or constants joined with +, or a @Field that is one of those. */
    boolean isConstant(Expression e) {
        if (e instanceof ConstantExpression) {
            return true
        }
        if (e instanceof BinaryExpression && e.operation.text == '+') {
            return isConstant(e.leftExpression) && isConstant(e.rightExpression)
        }
        if (e instanceof VariableExpression && finalLocals.containsKey(e.name)) {
            return isConstant(finalLocals[e.name])
        }
        if (e instanceof VariableExpression) {
            FieldNode f = scriptClass.getField(e.name)
            return f != null && f.final && f.initialExpression != null && isConstant(f.initialExpression)
        }
        return false
    }

    void checkSh(MethodCallExpression call) {
        Expression script = null
        Expression args = call.arguments
        List<Expression> list = args instanceof TupleExpression ? args.expressions : [args]
        if (list && list[0] instanceof MapExpression) {
            script = list[0].mapEntryExpressions.find { it.keyExpression.text == 'script' }?.valueExpression
        } else if (list) {
            script = list[0]
        }
        String where = "${file.name}:${call.lineNumber}"
        if (script == null) {
            shProblems << "${where}: sh without a script".toString()
        } else if (script instanceof GStringExpression) {
            shProblems << "${where}: sh interpolates ${script.values*.text} into the shell; pass values through withEnv".toString()
        } else if (!isConstant(script)) {
            shProblems << "${where}: sh script is not a constant string (${script.text})".toString()
        }
    }

    private static class Visitor extends ClassCodeVisitorSupport {
        final SourceScan scan
        final SourceUnit sourceUnit
        MethodNode current

        Visitor(SourceScan scan, SourceUnit su) {
            this.scan = scan
            this.sourceUnit = su
        }

        @Override
        protected SourceUnit getSourceUnit() {
            return sourceUnit
        }

        @Override
        void visitMethod(MethodNode node) {
            current = node
            super.visitMethod(node)
            current = null
        }

        @Override
        void visitDeclarationExpression(DeclarationExpression decl) {
            VariableExpression v = decl.variableExpression
            if (v != null && (v.modifiers & java.lang.reflect.Modifier.FINAL)) {
                scan.finalLocals[v.name] = decl.rightExpression
            }
            super.visitDeclarationExpression(decl)
        }

        @Override
        void visitMethodCallExpression(MethodCallExpression call) {
            scan.calls << call
            if (call.implicitThis && call.methodAsString in ['sh', 'bat']) {
                scan.checkSh(call)
            }
            boolean nonCps = current?.annotations?.any { it.classNode.nameWithoutPackage == 'NonCPS' }
            if (nonCps && call.implicitThis && call.methodAsString in STEPS) {
                scan.nonCpsProblems << "${scan.file.name}:${call.lineNumber}: @NonCPS ${current.name} calls the step ${call.methodAsString}".toString()
            }
            super.visitMethodCallExpression(call)
        }
    }
}
