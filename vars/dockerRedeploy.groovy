/*
 * dockerRedeploy: redeploy an image that is already in the registry, such as
 * in a promotion stage. Parameters and the returned Map are documented in
 * vars/dockerRedeploy.txt, generated from
 * resources/schemas/steps/dockerRedeploy.json; all logic is in
 * 'jenkinsctl deploy', reached through vars/jenkinsctlRun.groovy.
 */

/**
 * @param params see vars/dockerRedeploy.txt; image and deployTo are required
 * @return Map with image, digest, deploy and durations
 */
Map call(Map params = [:]) {
    return jenkinsctlRun('dockerRedeploy', params)
}
