/** Thrown by a test that cannot run here (for example the end-to-end test without an engine). */
class SkipTest extends RuntimeException {
    SkipTest(String reason) {
        super(reason)
    }
}
