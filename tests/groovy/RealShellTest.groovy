import java.security.MessageDigest

/**
 * The runner with a real sh (sh -xe, like the durable-task plugin) and real
 * environment variables, against a stand-in jenkinsctl written in Python
 * that reports exactly what it received: its argv after the shell parsed the
 * constant script, the parameters JSON, and the credentials it saw.
 */
class RealShellTest extends HarnessTest {

    File tmp

    static final String FAKE = '''\
        |#!/usr/bin/env python3
        |import hashlib, json, os, sys
        |argv = sys.argv[1:]
        |if argv == ["--version"]:
        |    print("jenkinsctl " + os.environ["FAKE_VERSION"])
        |    sys.exit(0)
        |opts = dict(zip(argv[0:6:2], argv[1:6:2]))
        |params = json.loads(os.environ[opts["--params-env"]])
        |result_file = argv[argv.index("--result") + 1]
        |if params.get("deployTo") == "container:broken":
        |    with open(opts["--error-file"], "w") as fh:
        |        json.dump({"message": "container broken did not become healthy", "hint": "see docker logs broken",
        |                   "category": "deploy", "exit_code": 6}, fh)
        |    print("error: container broken did not become healthy", file=sys.stderr)
        |    sys.exit(6)
        |password = os.environ.get("JENKINSCTL_REGISTRY_PASSWORD", "")
        |with open(result_file, "w") as fh:
        |    json.dump({"image": params.get("image"), "digest": "sha256:" + "d" * 64, "tags": [], "deploy": None,
        |               "argv": argv, "params": params, "cwd": os.getcwd(),
        |               "username": os.environ.get("JENKINSCTL_REGISTRY_USERNAME"),
        |               "password_sha256": hashlib.sha256(password.encode()).hexdigest()}, fh)
        |print("fake jenkinsctl: done")
        |'''.stripMargin()

    void setUp() {
        super.setUp()
        File bin = new File(h.root, 'bin')
        bin.mkdirs()
        File fake = new File(bin, 'jenkinsctl')
        fake.text = FAKE
        fake.setExecutable(true)
        h.realShell = true
        h.env.PATH = "${bin.path}:${System.getenv('PATH')}".toString()
        h.env.FAKE_VERSION = libraryVersion()
        // A directory with a space and a quote, so pwd(tmp: true) has them
        // too: the constant script quotes every variable.
        h.cwd = new File(h.root, "work space'")
        h.cwd.mkdirs()
        tmp = PipelineHarness.tempDirOf(h.cwd)
        h.credentials['registry'] = [type: 'usernamePassword', username: 'ci user',
                                     password: 'p"a$s\' `w0rd` $(id) \\ ü']
    }

    void testTheShellHandsJenkinsctlExactlyWhatTheStepGot() {
        Map params = [image: 'r.example/app', tags: ['1.0'], credentialsId: 'registry',
                      buildArgs: [NOTE: 'a "quoted" $HOME `cmd` \' ü 日本'], context: 'sub dir']
        Map result = step('dockerBuildPush', params)

        assert result.argv.size() == 7
        assert result.argv[0..1] == ['--params-env', 'JENKINSCTL_PARAMS']
        assert result.argv[2] == '--error-file' && result.argv[3].startsWith("${tmp.path}/jenkinsctl-")
        assert result.argv[4..5] == ['ship', '--result']
        assert result.argv[6].startsWith("${tmp.path}/jenkinsctl-") && result.argv[6].endsWith('-result.json')
        assert result.params == params
        assert result.username == 'ci user'
        byte[] hash = MessageDigest.getInstance('SHA-256').digest('p"a$s\' `w0rd` $(id) \\ ü'.getBytes('UTF-8'))
        assert result.password_sha256 == hash.encodeHex().toString()
        assert result.cwd == h.cwd.canonicalPath
        assert h.stepCalls == [[step: 'dockerBuildPush', sh: 1]]
        assert h.log.contains('fake jenkinsctl: done')
        assert h.log.any { it.startsWith('+ jenkinsctl --params-env JENKINSCTL_PARAMS --error-file ') }
        assert !h.logText().contains('w0rd') && !h.calls.toString().contains('w0rd')
        assert tmp.list().findAll { it.startsWith('jenkinsctl-') }.empty // cleaned up
    }

    void testAFailureOnTheAgentBecomesOneError() {
        String msg = failure { step('dockerRedeploy', [image: 'r.example/app:1', deployTo: 'container:broken']) }
        assert msg == '[dockerRedeploy] container broken did not become healthy (hint: see docker logs broken)'
        assert h.log.contains('error: container broken did not become healthy')
        assert tmp.list().findAll { it.startsWith('jenkinsctl-') }.empty
    }

    void testVersionCheckRunsTheRealBinary() {
        h.env.FAKE_VERSION = '0.0.1'
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('has jenkinsctl 0.0.1, but this library')
        List<String> p = libraryVersion().tokenize('.')
        h.env.FAKE_VERSION = "${p[0]}.${p[1]}.${(p[2] as int) + 7}".toString()
        assert step('dockerBuildPush', [image: 'r.example/app']).digest
        // 0.1 must not accept 0.10.x
        h.env.FAKE_VERSION = "${p[0]}.${p[1]}0.0".toString()
        assert failure { step('dockerBuildPush', [image: 'r.example/app']) }.contains('works only with')
    }

    void testTheTrapRemovesTheFilesWhenTheStepIsAborted() {
        // What Jenkins does on abort or timeout: SIGTERM to the sh. The fake
        // jenkinsctl writes its result file, then hangs.
        File bin = new File(h.root, 'bin')
        new File(bin, 'jenkinsctl').text = '''\
            |#!/bin/sh
            |if [ "$1" = --version ]; then echo "jenkinsctl $FAKE_VERSION"; exit 0; fi
            |echo '{"partial": true}' >"$JENKINSCTL_RESULT_FILE"
            |echo started >"$STARTED"
            |exec sleep 60
            |'''.stripMargin()
        java.lang.reflect.Field f = h.scripts.jenkinsctlRun.getClass().getDeclaredField('RUN_SCRIPT')
        f.accessible = true
        File started = new File(h.root, 'started')
        File result = new File(tmp, 'jenkinsctl-abort-result.json')
        tmp.mkdirs()
        ProcessBuilder pb = new ProcessBuilder('sh', '-xe', '-c', f.get(null) as String)
        pb.environment().putAll(h.env + [JENKINSCTL_SERIES: h.scripts.jenkinsctlRun.series(libraryVersion()),
                                         JENKINSCTL_PARAMS: '{}', JENKINSCTL_COMMAND: 'ship', STARTED: started.path,
                                         JENKINSCTL_RESULT_FILE: result.path,
                                         JENKINSCTL_ERROR_FILE: new File(tmp, 'jenkinsctl-abort-error.json').path])
        pb.redirectErrorStream(true)
        Process p = pb.start()
        long deadline = System.currentTimeMillis() + 10000
        while (!started.exists() && System.currentTimeMillis() < deadline) {
            Thread.sleep(50)
        }
        assert result.exists()
        // durable-task ends the whole process tree: SIGTERM to the shell and
        // to everything it started (ProcessHandle.destroy sends SIGTERM).
        List children = p.descendants().collect { it }
        assert p.toHandle().destroy()
        children.each { it.destroy() }
        assert p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)
        assert p.exitValue() == 143
        assert !result.exists()
    }

    void testMissingBinary() {
        h.env.PATH = '/usr/bin:/bin'
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('jenkinsctl was not found on agent agent-1')
    }
}
