using System.Text.Json.Nodes;
using SmpRobot.Operator.Cli;
using SmpRobot.Operator.Cli.Commands;

namespace SmpRobot.Tests.Cli;

public sealed class PlanFileTests : IDisposable
{
    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("smp-cli-test-");

    public void Dispose() => dir.Delete(recursive: true);

    internal static string PlanJson(int dots)
    {
        var array = new JsonArray();
        for (var i = 1; i <= dots; i++)
        {
            array.Add(new JsonObject { ["id"] = "d" + i, ["xMm"] = i * 1.5, ["yMm"] = 2.0, ["depthMm"] = 1.0, ["dwellMs"] = 40, ["pigmentId"] = "p1" });
        }
        return new JsonObject { ["name"] = "crown", ["units"] = "mm", ["dots"] = array }.ToJsonString();
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(dir.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task A_sparse_1_GB_file_is_refused_without_being_read()
    {
        var path = Path.Combine(dir.FullName, "huge.json");
        using (var f = new FileStream(path, FileMode.CreateNew))
        {
            f.SetLength(1L << 30); // sparse: no data written, so reading it would take long and allocate 1 GB
        }
        var e = Assert.Throws<CliException>(() => PlanFile.ReadChecked(path));
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
        Assert.Contains("limit is 8 MiB", e.Message, StringComparison.Ordinal);

        // Through the CLI: refused before any controller is contacted (the address is a closed port).
        var (code, stdout, stderr) = await CliRunner.RunAsync("plan", "check", path, "--controller", "http://127.0.0.1:9", "--json");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("limit is 8 MiB", stderr, StringComparison.Ordinal);
        Assert.Equal(2, (int)JsonNode.Parse(stdout)!["exitCode"]!);
        var (runCode, _, _) = await CliRunner.RunAsync("run", path, "--controller", "http://127.0.0.1:9");
        Assert.Equal(ExitCodes.Usage, runCode);
    }

    [Fact]
    public void A_file_at_the_limit_is_read_and_a_missing_one_is_usage()
    {
        var path = Write("ok.json", PlanJson(3));
        Assert.Equal(PlanJson(3), PlanFile.ReadChecked(path));
        var missing = Assert.Throws<CliException>(() => PlanFile.ReadChecked(Path.Combine(dir.FullName, "nope.json")));
        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        Assert.Contains("not found", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dots_truncation_keeps_the_first_n_dots_and_the_rest_of_the_plan()
    {
        var truncated = JsonNode.Parse(PlanFile.KeepFirstDots(PlanJson(10), 3, "p"))!;
        var dots = truncated["dots"]!.AsArray();
        Assert.Equal(["d1", "d2", "d3"], dots.Select(d => (string)d!["id"]!).ToArray());
        Assert.Equal("crown (first 3 of 10 dots)", (string)truncated["name"]!);
        Assert.Equal(40, (int)dots[2]!["dwellMs"]!);
        Assert.Equal(10, JsonNode.Parse(PlanFile.KeepFirstDots(PlanJson(10), 10, "p"))!["dots"]!.AsArray().Count);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(0)]
    public void Dots_beyond_the_plan_or_below_one_is_usage(int n)
    {
        var e = Assert.Throws<CliException>(() => PlanFile.KeepFirstDots(PlanJson(10), n, "p"));
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
    }

    [Fact]
    public async Task Demo_with_more_dots_than_the_plan_exits_2_before_starting_a_controller()
    {
        var plan = Write("demo.json", PlanJson(4));
        var (code, stdout, stderr) = await CliRunner.RunAsync("demo", "--plan", plan, "--dots", "5", "--json");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--dots 5 is more than the 4 dots", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("starting", stderr, StringComparison.Ordinal);
        Assert.Equal(2, (int)JsonNode.Parse(stdout)!["exitCode"]!);
    }

    [Fact]
    public async Task Demo_without_a_controller_executable_says_how_to_provide_one()
    {
        var plan = Write("demo.json", PlanJson(4));
        var host = CliRunner.IsolatedHost(baseDirectory: dir.FullName);
        var (code, _, stderr) = await CliRunner.RunAsync(host, "demo", "--plan", plan, "--dots", "2");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("cannot find smp-controller", stderr, StringComparison.Ordinal);
        Assert.Contains("SMP_CONTROLLER_EXE", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Default_plan_is_found_via_SMP_HARDWARE_DIR_or_above_the_executable()
    {
        var hw = Directory.CreateDirectory(Path.Combine(dir.FullName, "repo", "hardware", "plans"));
        var deep = Directory.CreateDirectory(Path.Combine(dir.FullName, "repo", "src", "bin", "Debug"));
        Assert.Equal(Path.Combine(dir.FullName, "repo", "hardware", "plans", "demo-crown.json"),
            DemoCommand.FindDefaultPlan(CliRunner.IsolatedHost(baseDirectory: deep.FullName)));
        var env = new Dictionary<string, string> { ["SMP_HARDWARE_DIR"] = "/opt/smp/hardware" };
        Assert.Equal(Path.Combine("/opt/smp/hardware", "plans", "demo-crown.json"),
            DemoCommand.FindDefaultPlan(CliRunner.IsolatedHost(env, deep.FullName)));
        Assert.True(hw.Exists);
    }
}
