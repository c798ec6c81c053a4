using System.CommandLine;
using System.Text.Json.Nodes;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

public class CliParsingTests
{
    private static ParseResult Parse(params string[] args) =>
        new CliCommands(TextWriter.Null, TextWriter.Null, CliRunner.IsolatedHost()).Root.Parse(args);

    [Theory]
    [InlineData("demo")]
    [InlineData("demo --dots 5 --time-scale 50 --no-ui --plan p.json")]
    [InlineData("run plan.json")]
    [InlineData("run plan.json --no-ui --json --controller http://10.0.0.2:50051")]
    [InlineData("watch")]
    [InlineData("watch s-1 --no-ui")]
    [InlineData("estop")]
    [InlineData("estop --reason smoke --json")]
    [InlineData("estop --reset")]
    [InlineData("plan check plan.json")]
    [InlineData("sessions")]
    [InlineData("session show s-1")]
    [InlineData("session pause s-1")]
    [InlineData("session resume s-1")]
    [InlineData("session abort s-1")]
    [InlineData("session resolve s-1 --dot d1 --dot d2 --as redo")]
    [InlineData("session resolve s-1 --all-in-doubt --as placed --operator ana")]
    [InlineData("session resolve s-1 --all-in-doubt --as skip")]
    [InlineData("machine status")]
    [InlineData("machine home")]
    [InlineData("machine jog --dx 1.5 --dy -2 --dz 0.25 --feed 600")]
    [InlineData("machine jog --dz -1")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public void Valid_command_lines_parse_without_errors(string line)
    {
        var result = Parse(line.Split(' '));
        Assert.Empty(result.Errors);
    }

    [Fact]
    public void Options_carry_their_values_and_defaults()
    {
        var demo = Parse("demo", "--dots", "7", "--plan", "x.json");
        Assert.Equal(7, demo.GetValue<int?>("--dots"));
        Assert.Equal("x.json", demo.GetValue<string?>("--plan"));
        Assert.False(demo.GetValue<bool>("--no-ui"));

        var resolve = Parse("session", "resolve", "s-9", "--dot", "a", "--dot", "b", "--as", "skip", "--json");
        Assert.Equal(["a", "b"], resolve.GetValue<string[]>("--dot")!);
        Assert.Equal("skip", resolve.GetValue<string>("--as"));
        Assert.True(resolve.GetValue<bool>("--json"));

        var jog = Parse("machine", "jog", "--dx", "1.25", "--feed", "300");
        Assert.Equal(1.25, jog.GetValue<double>("--dx"));
        Assert.Equal(300.0, jog.GetValue<double>("--feed"));
        Assert.Equal(0.0, jog.GetValue<double>("--dy"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("frobnicate")]
    [InlineData("run")]
    [InlineData("plan check")]
    [InlineData("session show")]
    [InlineData("session resolve s-1 --as placed")]
    [InlineData("session resolve s-1 --dot d1 --all-in-doubt --as placed")]
    [InlineData("session resolve s-1 --dot d1")]
    [InlineData("session resolve s-1 --dot d1 --as maybe")]
    [InlineData("machine jog")]
    [InlineData("machine jog --dx 1 --feed -5")]
    [InlineData("machine jog --dx abc")]
    [InlineData("demo --dots 0")]
    [InlineData("demo --dots many")]
    [InlineData("demo --time-scale 0")]
    [InlineData("estop --bogus")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public async Task Bad_usage_exits_2_with_a_message_and_nothing_on_stdout(string line)
    {
        var args = line.Length == 0 ? [] : line.Split(' ');
        var (code, stdout, stderr) = await CliRunner.RunAsync(args);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Equal("", stdout);
        Assert.Contains("smp:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal); // no stack trace
    }

    [Fact]
    public async Task A_demo_faster_than_the_tracker_can_follow_is_refused_at_once_naming_the_highest_scale()
    {
        var (code, stdout, stderr) = await CliRunner.RunAsync("demo", "--time-scale", "50");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Equal("", stdout);
        Assert.Contains("--time-scale 50 is faster than the synthetic camera can be tracked (at most 1", stderr, StringComparison.Ordinal);
        Assert.Contains("--camera none", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_estop_that_cannot_reach_the_controller_says_it_was_not_sent_and_names_the_hard_wired_stop()
    {
        var (code, stdout, stderr) = await CliRunner.RunAsync("estop", "--controller", $"http://127.0.0.1:{EndToEnd.RealProcess.FreePort()}");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Equal("", stdout);
        Assert.Contains("EMERGENCY STOP NOT SENT", stderr, StringComparison.Ordinal);
        Assert.Contains("PRESS THE HARD-WIRED E-STOP", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_usage_with_json_prints_one_error_object()
    {
        var (code, stdout, _) = await CliRunner.RunAsync("machine", "jog", "--json");
        Assert.Equal(ExitCodes.Usage, code);
        var obj = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(2, (int)obj["exitCode"]!);
        Assert.Contains("--dx", (string)obj["error"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_exits_0_and_mentions_the_emergency_stop()
    {
        var (code, stdout, _) = await CliRunner.RunAsync("watch", "--help");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("EMERGENCY STOP", stdout, StringComparison.Ordinal);
        Assert.Contains("Ctrl+C", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ftp://host:1")]
    [InlineData("not a url")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1054", Justification = "the bad URLs are text on purpose: the console is what parses them")]
    public async Task Bad_controller_url_exits_2(string url)
    {
        var (code, _, stderr) = await CliRunner.RunAsync("sessions", "--controller", url);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("bad controller URL", stderr, StringComparison.Ordinal);
    }
}
