using System.Text.Json;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

/// <summary>smp plan check and smp machine settings with --profile work without a controller (the controller's own validator, in SmpRobot.Machine).</summary>
public class OfflineChecksTests
{
    private static readonly string Profiles = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles");
    private static readonly string NoController = "http://127.0.0.1:" + EndToEnd.RealProcess.FreePort();

    [Fact]
    public async Task A_plan_is_checked_offline_against_a_profile_file()
    {
        var plan = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
        var (code, stdout, _) = await CliRunner.RunAsync("plan", "check", plan, "--profile", Path.Combine(Profiles, "desk-200.json"), "--json", "--controller", NoController);
        Assert.Equal(ExitCodes.Success, code);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.True(json.GetProperty("valid").GetBoolean());
        Assert.True(json.GetProperty("offline").GetBoolean());
        Assert.Equal(SmpRobot.Contracts.V1.Plan.Parser.ParseJson(await File.ReadAllTextAsync(plan)).Dots.Count, json.GetProperty("dotCount").GetInt32());

        var bad = Path.Combine(Directory.CreateTempSubdirectory("smp-offline-").FullName, "bad.json");
        await File.WriteAllTextAsync(bad, "{\"name\":\"x\",\"units\":\"mm\",\"dots\":[{\"id\":\"d1\",\"xMm\":0,\"yMm\":0,\"zMm\":1,\"depthMm\":9,\"dwellMs\":200,\"pigmentId\":\"charcoal-1\"}]}");
        var (badCode, badOut, _) = await CliRunner.RunAsync("plan", "check", bad, "--profile", Path.Combine(Profiles, "sim.json"), "--controller", NoController);
        Assert.Equal(ExitCodes.Usage, badCode);
        Assert.Contains("dot d1  depth-range", badOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_profile_and_without_a_controller_the_console_names_the_flag()
    {
        var plan = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
        var (code, _, stderr) = await CliRunner.RunAsync("plan", "check", plan, "--controller", NoController);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("give --profile FILE", stderr, StringComparison.Ordinal);
        var (settingsCode, _, settingsErr) = await CliRunner.RunAsync("machine", "settings", "--controller", NoController);
        Assert.Equal(ExitCodes.Failure, settingsCode);
        Assert.Contains("give --profile FILE", settingsErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Firmware_settings_of_a_profile_file_are_printed_offline()
    {
        var (code, stdout, _) = await CliRunner.RunAsync("machine", "settings", "--profile", Path.Combine(Profiles, "desk-200.json"), "--controller", NoController);
        Assert.Equal(ExitCodes.Success, code);
        var expected = SmpRobot.Machine.FirmwareSettings.ToLines(SmpRobot.Machine.FirmwareSettings.Expected(TestProfiles.Desk())).Split('\n');
        var lines = stdout.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith('$')).ToArray();
        Assert.Equal(expected, lines);
    }
}
