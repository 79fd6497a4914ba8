/**
 * vars/*.txt are the help pages Jenkins shows under Pipeline Syntax > Global
 * Variables Reference, through the controller's markup formatter. The CasC
 * jenkinsctl generates configures the safe HTML formatter
 * (antisamy-markup-formatter), whose OWASP policy keeps only the elements
 * below and drops the rest with their markup: hudson.markup.BasicPolicy in
 * jenkinsci/antisamy-markup-formatter-plugin joins OWASP's Sanitizers.BLOCKS,
 * FORMATTING, IMAGES, LINKS, STYLES and TABLES (element lists in
 * org.owasp.html.HtmlPolicyBuilder's allowCommonBlockElements and
 * allowCommonInlineFormattingElements, and Sanitizers) with dl, dt, dd, hr,
 * pre and a with target=_blank. The generated pages must use only those,
 * without attributes, so they render as written.
 */
class HelpPagesTest extends HarnessTest {

    static final Set<String> SAFE_HTML = ([
        // Sanitizers.BLOCKS
        'p', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote',
        // Sanitizers.FORMATTING
        'b', 'i', 'font', 's', 'u', 'o', 'sup', 'sub', 'ins', 'del', 'strong', 'strike', 'tt', 'code', 'big',
        'small', 'br', 'span', 'em',
        // Sanitizers.IMAGES, LINKS, TABLES
        'img', 'a', 'table', 'tr', 'td', 'th', 'colgroup', 'caption', 'col', 'thead', 'tbody', 'tfoot',
        // BasicPolicy.ADDITIONS
        'dl', 'dt', 'dd', 'hr', 'pre',
    ] as Set).asImmutable()

    static List<File> pages() {
        return new File(repo, 'vars').listFiles().findAll { it.name.endsWith('.txt') }.sort()
    }

    /** Tag names and whether any tag carries attributes, comments removed (the policy drops them). */
    static List<Map> tags(String html) {
        String text = html.replaceAll(/(?s)<!--.*?-->/, '')
        return (text =~ /<(\/?)([A-Za-z][A-Za-z0-9]*)([^>]*)>/).collect {
            [name: (it[2] as String).toLowerCase(), closing: it[1] == '/', attrs: (it[3] as String).trim()]
        }
    }

    void testEveryPageUsesOnlyTheSafeFormattersElements() {
        assert pages()*.name == ['dockerBuildPush.txt', 'dockerRedeploy.txt', 'jenkinsctlRun.txt']
        pages().each { File f ->
            List<Map> t = tags(f.text)
            assert t: "${f.name} has no markup"
            Set<String> names = t*.name as Set
            assert (names - SAFE_HTML).empty: "${f.name}: ${names - SAFE_HTML} would be removed by the safe HTML formatter"
            assert t.every { !it.attrs }: "${f.name}: attributes are dropped: ${t.findAll { it.attrs }}"
        }
    }

    void testEveryPageIsBalancedAndEscaped() {
        pages().each { File f ->
            List<String> open = []
            tags(f.text).each { Map tag ->
                if (tag.closing) {
                    assert open && open.pop() == tag.name: "${f.name}: </${tag.name}> closes nothing"
                } else {
                    open.push(tag.name)
                }
            }
            assert open.empty: "${f.name}: unclosed ${open}"
            // A bare < or & outside markup would be swallowed or mangled.
            String text = f.text.replaceAll(/(?s)<!--.*?-->/, '').replaceAll(/<\/?[A-Za-z][A-Za-z0-9]*[^>]*>/, '')
            assert !text.contains('<') && !text.contains('>'): "${f.name}: unescaped < or >"
            assert !(text =~ /&(?!(lt|gt|amp|quot|#39);)/): "${f.name}: unescaped &"
        }
    }

    void testTheCheckCatchesWhatTheFormatterDrops() {
        List<Map> t = tags('<!-- <script> --><p>x <table><tr><td>ok</td></tr></table><script>1</script>' +
                           '<a href="x">y</a></p>')
        assert (t*.name as Set) - SAFE_HTML == ['script'] as Set
        assert t.find { it.name == 'a' }.attrs == 'href="x"'
    }
}
