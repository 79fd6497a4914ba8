/*
 * dockerBuildPush: build an image on the agent's engine, push its tags, and
 * optionally redeploy it by digest. Parameters, defaults and the returned Map
 * are documented in vars/dockerBuildPush.txt, generated from
 * resources/schemas/steps/dockerBuildPush.json; all logic is in
 * 'jenkinsctl ship', reached through vars/jenkinsctlRun.groovy.
 */

/**
 * @param params see vars/dockerBuildPush.txt; image is required
 * @return Map with image, digest, tags, deploy and durations
 */
Map call(Map params = [:]) {
    return jenkinsctlRun('dockerBuildPush', params)
}
