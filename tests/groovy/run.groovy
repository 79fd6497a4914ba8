/*
 * Runs the Groovy tests of the shared library on Groovy 2.4 (the version
 * Jenkins runs pipelines on).
 *
 *   groovy -cp tests/groovy/lib:tests/groovy/stubs tests/groovy/run.groovy [--e2e] [FILTER...]
 *
 * Test classes are tests/groovy/*Test.groovy; every public method named
 * test* runs on a fresh instance between setUp() and tearDown(). A FILTER
 * keeps the tests whose "Class.method" contains it. EndToEnd* classes run
 * only with --e2e (or JENKINSCTL_GROOVY_E2E=1). Exits 1 when a test fails;
 * the last line is "N passed, N failed".
 */
import java.lang.reflect.InvocationTargetException
import java.lang.reflect.Method
import java.lang.reflect.Modifier

File here = new File(getClass().protectionDomain.codeSource.location.path).parentFile
if (!new File(here, 'run.groovy').exists()) {
    here = new File('tests/groovy')
}
File repo = here.parentFile.parentFile.canonicalFile
System.setProperty('jenkinsctl.repo', repo.path)

boolean e2e = args.contains('--e2e') || System.getenv('JENKINSCTL_GROOVY_E2E') == '1'
List<String> filters = args.findAll { !it.startsWith('--') }

GroovyClassLoader loader = new GroovyClassLoader(getClass().classLoader)
[new File(here, 'lib'), new File(here, 'stubs')].each { loader.addClasspath(it.path) }

int passed = 0
int failed = 0
int skipped = 0
List<String> failures = []
long started = System.currentTimeMillis()

here.listFiles().findAll { it.name.endsWith('Test.groovy') }.sort { it.name }.each { File f ->
    Class cls
    try {
        cls = loader.parseClass(f)
    } catch (Throwable compileError) {
        failed++
        failures << "${f.name}: does not compile: ${compileError.message}"
        println "FAIL ${f.name} (compile)\n${compileError.message}"
        return
    }
    boolean endToEnd = cls.simpleName.startsWith('EndToEnd')
    List<Method> tests = cls.methods.findAll {
        it.name.startsWith('test') && it.parameterTypes.length == 0 && Modifier.isPublic(it.modifiers)
    }.sort { it.name }
    tests.each { Method m ->
        String name = cls.simpleName + "." + m.name
        if (filters && !filters.any { name.contains(it) }) {
            return
        }
        if (endToEnd && !e2e) {
            skipped++
            println "skip ${name} (end-to-end: run with --e2e)"
            return
        }
        Object t = cls.newInstance()
        long t0 = System.currentTimeMillis()
        Throwable problem = null
        try {
            t.setUp()
            m.invoke(t)
        } catch (InvocationTargetException ite) {
            problem = ite.cause
        } catch (Throwable other) {
            problem = other
        } finally {
            try {
                t.tearDown()
            } catch (Throwable teardownError) {
                problem = problem ?: teardownError
            }
        }
        String took = String.format('%.2fs', (System.currentTimeMillis() - t0) / 1000.0)
        if (problem == null) {
            passed++
            println "ok   ${name} (${took})"
        } else if (problem.class.name == 'SkipTest') {
            skipped++
            println "skip ${name}: ${problem.message}"
        } else {
            failed++
            failures << name
            println "FAIL ${name} (${took})"
            String trace = problem instanceof AssertionError ? problem.message :
                problem.toString() + '\n' + problem.stackTrace.findAll {
                    it.fileName?.endsWith('.groovy')
                }.take(8).collect { "    at ${it}" }.join('\n')
            println trace.readLines().collect { "    ${it}" }.join('\n')
        }
    }
}

println ''
if (failures) {
    println "failed: ${failures.join(', ')}"
}
println "groovy ${GroovySystem.version}, ${skipped} skipped, " +
    String.format('%.1fs', (System.currentTimeMillis() - started) / 1000.0)
println "${passed} passed, ${failed} failed"
System.exit(failed || (passed == 0 && !filters) ? 1 : 0)
