/** The runner's own helpers; the steps' behaviour is tested through the steps. */
class JenkinsctlRunTest extends HarnessTest {

    Script runner() {
        return h.scripts.jenkinsctlRun
    }

    void testDidYouMeanFindsTyposAndCaseSlips() {
        List<String> keys = ['image', 'tags', 'credentialsId', 'noCache', 'deployTo']
        assert runner().closest('imgae', keys) == 'image'
        assert runner().closest('credentialsID', keys) == 'credentialsId'
        assert runner().closest('nocache', keys) == 'noCache'
        assert runner().closest('tag', keys) == 'tags'
        assert runner().closest('deploy_to', keys) == 'deployTo'
        assert runner().closest('registry', keys) == null
    }

    void testLevenshtein() {
        assert runner().distance('', 'abc') == 3
        assert runner().distance('kitten', 'sitting') == 3
        assert runner().distance('same', 'same') == 0
    }

    void testUnknownStepIsALibraryBug() {
        String msg = failure { h.binding.getVariable('jenkinsctlRun').call('dockerFly', [:]) }
        assert msg.contains('No such library resource schemas/steps/dockerFly.json')
    }

    void testCredentialBindingsComeFromTheSchema() {
        Map schema = runner().parseJson(new File(repo, 'resources/schemas/steps/dockerBuildPush.json').text)
        assert runner().credentialBindings(schema, [credentialsId: 'r', webhookSecretFileCredentialsId: 'f']) == [
            [credentialsId: 'r', binding: 'usernamePassword', usernameVariable: 'JENKINSCTL_REGISTRY_USERNAME',
             passwordVariable: 'JENKINSCTL_REGISTRY_PASSWORD'],
            [credentialsId: 'f', binding: 'file', variable: 'JENKINSCTL_WEBHOOK_SECRET_FILE'],
        ]
    }

    void testParseJsonRejectsNonObjects() {
        try {
            runner().parseJson('[1]')
            assert false: 'expected an exception'
        } catch (IllegalArgumentException e) {
            assert e.message.contains('expected a JSON object')
        }
    }
}
