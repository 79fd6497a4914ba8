/**
 * The Binding of one script (a vars/ file or a Jenkinsfile). Jenkins gives
 * every script its own: a variable one script sets without def stays in
 * that script. Steps, globals and the library's steps come from the
 * harness's shared StepBinding.
 */
class ScriptBinding extends Binding {

    final Binding shared

    ScriptBinding(Binding shared) {
        this.shared = shared
    }

    @Override
    Object getVariable(String name) {
        return variables.containsKey(name) ? super.getVariable(name) : shared.getVariable(name)
    }

    @Override
    boolean hasVariable(String name) {
        return variables.containsKey(name) || shared.hasVariable(name)
    }
}
