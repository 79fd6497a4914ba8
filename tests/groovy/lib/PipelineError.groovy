/** What error() and a failing sh throw in Jenkins (hudson.AbortException): the build fails with the message. */
class PipelineError extends RuntimeException {
    PipelineError(String message) {
        super(message)
    }
}
