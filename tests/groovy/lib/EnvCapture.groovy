/** Delegate of a declarative environment { } block: assignments become env entries. */
class EnvCapture {

    final Map<String, Object> values = [:]
    Binding binding

    /** What the block assigned (a method: property reads go to the binding). */
    Map<String, Object> captured() {
        return values
    }

    @Override
    void setProperty(String name, Object value) {
        values[name] = value
    }

    @Override
    Object getProperty(String name) {
        return binding.getVariable(name)
    }
}
