/**
 * The harness's Binding. In declarative mode the keywords of a declarative
 * pipeline (and the few steps examples use that the harness does not stub
 * one by one) are generic steps that run their closure. Any other unknown
 * name still fails, so a typo in vars/ is never hidden: note that a Script
 * asks its binding first even for its own @Field constants.
 */
class StepBinding extends Binding {

    static final Set<String> DECLARATIVE = ([
        'pipeline', 'agent', 'any', 'none', 'label', 'docker', 'stages', 'steps', 'script', 'parallel',
        'post', 'always', 'success', 'failure', 'unstable', 'aborted', 'changed', 'fixed', 'regression', 'cleanup',
        'environment', 'options', 'timeout', 'buildDiscarder', 'logRotator', 'disableConcurrentBuilds', 'timestamps',
        'when', 'branch', 'buildingTag', 'anyOf', 'allOf', 'not', 'expression', 'input', 'message',
        'parameters', 'booleanParam', 'tools', 'triggers', 'library', 'legacySCM', 'modernSCM', 'retry', 'sleep',
    ] as Set).asImmutable()

    final PipelineHarness harness

    StepBinding(PipelineHarness harness) {
        this.harness = harness
    }

    @Override
    Object getVariable(String name) {
        if (!variables.containsKey(name) && harness.declarative && name in DECLARATIVE) {
            return harness.genericStep(name)
        }
        return super.getVariable(name)
    }
}
