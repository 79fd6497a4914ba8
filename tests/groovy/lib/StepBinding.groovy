/**
 * The harness's shared Binding: the steps, globals and library steps every
 * script sees. In declarative mode, a name that resources/schemas/
 * pipeline-plugins.json lists (a directive, option, agent, post or when
 * condition, or a step the harness does not stub one by one, such as
 * library or checkout) is a generic step that runs its closure, after the
 * harness checked that a plugin in plugins.txt provides it (Declarative
 * rejects the whole pipeline otherwise). Any other unknown name still
 * fails, so a typo in vars/ is never hidden: note that a Script asks its
 * binding first even for its own @Field constants.
 */
class StepBinding extends Binding {

    final PipelineHarness harness

    StepBinding(PipelineHarness harness) {
        this.harness = harness
    }

    @Override
    Object getVariable(String name) {
        if (!variables.containsKey(name) && harness.declarative) {
            Map entry = harness.pluginTable[name] as Map
            if (entry) {
                return harness.genericStep(name)
            }
        }
        return super.getVariable(name)
    }
}
