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
        String msg = failure { runner().parseJson('[1]') }
        assert msg == '[jenkinsctlRun] expected a JSON object, got ArrayList'
        assert h.callsTo('readJSON')*.args*.getAt(0) == [[text: '[1]', returnPojo: true]]
        assert runner().parseJsonOrEmpty('{"half') == [:]
        assert runner().parseJsonOrEmpty('[1]') == [:]
    }

    void testTheReportOfTheOneShIsParsed() {
        Map r = runner().parseReport('@@jenkinsctl status 6\n@@jenkinsctl result\n{"a": 1}\n\n' +
                                     '@@jenkinsctl error\n{"message": "m"}\n')
        assert r == [status: 6, result: '{"a": 1}', error: '{"message": "m"}']
        assert runner().parseReport('@@jenkinsctl version jenkinsctl 0.2.0\n').found == 'jenkinsctl 0.2.0'
        assert runner().parseReport('@@jenkinsctl version \n').found == ''
        assert runner().parseReport('@@jenkinsctl inside-container\n').insideContainer
        assert runner().parseReport('').status == null
    }

    void testSeries() {
        assert runner().series('0.1.0') == '0.1'
        assert runner().series('12.34.5rc1') == '12.34'
    }
}
