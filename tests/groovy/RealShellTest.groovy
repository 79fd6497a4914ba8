import java.security.MessageDigest

/**
 * The runner with a real sh (sh -xe, like the durable-task plugin) and real
 * environment variables, against a stand-in jenkinsctl written in Python
 * that reports exactly what it received: its argv after the shell parsed the
 * constant script, the parameters JSON, and the credentials it saw.
 */
class RealShellTest extends HarnessTest {

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
        // A tmp dir with a space and a quote: the constant script quotes every variable.
        h.tmpDir = new File(h.root, "work space'@tmp")
        h.tmpDir.mkdirs()
        h.credentials['registry'] = [type: 'usernamePassword', username: 'ci user',
                                     password: 'p"a$s\' `w0rd` $(id) \\ ü']
    }

    void testTheShellHandsJenkinsctlExactlyWhatTheStepGot() {
        Map params = [image: 'r.example/app', tags: ['1.0'], credentialsId: 'registry',
                      buildArgs: [NOTE: 'a "quoted" $HOME `cmd` \' ü 日本'], context: 'sub dir']
        Map result = step('dockerBuildPush', params)

        String tmp = h.tmpDir.path
        assert result.argv.size() == 7
        assert result.argv[0..1] == ['--params-env', 'JENKINSCTL_PARAMS']
        assert result.argv[2] == '--error-file' && result.argv[3].startsWith("${tmp}/jenkinsctl-")
        assert result.argv[4..5] == ['ship', '--result']
        assert result.argv[6].startsWith("${tmp}/jenkinsctl-") && result.argv[6].endsWith('-result.json')
        assert result.params == params
        assert result.username == 'ci user'
        byte[] hash = MessageDigest.getInstance('SHA-256').digest('p"a$s\' `w0rd` $(id) \\ ü'.getBytes('UTF-8'))
        assert result.password_sha256 == hash.encodeHex().toString()
        assert result.cwd == h.workspace.canonicalPath
        assert h.log.contains('fake jenkinsctl: done')
        assert h.log.any { it.startsWith('+ jenkinsctl --params-env JENKINSCTL_PARAMS --error-file ') }
        assert !h.logText().contains('w0rd') && !h.calls.toString().contains('w0rd')
        assert h.tmpDir.list().findAll { it.startsWith('jenkinsctl-') }.empty // cleaned up
    }

    void testAFailureOnTheAgentBecomesOneError() {
        String msg = failure { step('dockerRedeploy', [image: 'r.example/app:1', deployTo: 'container:broken']) }
        assert msg == '[dockerRedeploy] container broken did not become healthy (hint: see docker logs broken)'
        assert h.log.contains('error: container broken did not become healthy')
        assert h.tmpDir.list().findAll { it.startsWith('jenkinsctl-') }.empty
    }

    void testVersionCheckRunsTheRealBinary() {
        h.env.FAKE_VERSION = '0.0.1'
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('has jenkinsctl 0.0.1 but this library needs')
    }

    void testMissingBinary() {
        h.env.PATH = '/usr/bin:/bin'
        String msg = failure { step('dockerBuildPush', [image: 'r.example/app']) }
        assert msg.contains('jenkinsctl was not found on agent agent-1')
    }
}
