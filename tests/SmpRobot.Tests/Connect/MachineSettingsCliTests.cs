using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Operator.Cli;
using SmpRobot.Tests.Cli;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Connect;

/// <summary>MachineService.FirmwareSettings, the settings in MachineStatus, and <c>smp machine settings|status</c> against a real controller.</summary>
public sealed class MachineSettingsCliTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("smp-connect-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static Task<(int Code, string Stdout, string Stderr)> Smp(ControllerFixture controller, params string[] args) =>
        CliRunner.RunAsync(CliRunner.IsolatedHost(), [.. args, "--controller", controller.Address]);

    private static string ProfileText(string name) => File.ReadAllText(Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", name));

    /// <summary>A controller on sim.json whose simulated board was configured with 100 X steps/mm.</summary>
    private static Task<ControllerFixture> StartWithMisconfiguredBoardAsync()
    {
        var profile = ControllerFixture.Profile;
        var board = new SimulatedGantry(profile with { StepsPerMm = profile.StepsPerMm with { X = 100 } }, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200 });
        return ControllerFixture.StartAsync(board);
    }

    [Fact]
    public async Task Settings_prints_pasteable_lines_and_says_the_board_matches()
    {
        await using var controller = await ControllerFixture.StartAsync();
        var (code, stdout, _) = await Smp(controller, "machine", "settings");

        Assert.Equal(ExitCodes.Success, code);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // Every line is either a setting or a grbl comment: the whole output can go to the board.
        Assert.All(lines, l => Assert.Matches(@"^(\$\d+=[0-9.]+|;.*)$", l));
        var settingLines = lines.Where(l => l.StartsWith('$')).ToList();
        Assert.Equal(SmpRobot.Machine.FirmwareSettings.ToLines(SmpRobot.Machine.FirmwareSettings.Expected(ControllerFixture.Profile)).Split('\n'), settingLines);
        Assert.Contains("$100=80.000", settingLines);
        Assert.Contains("; board matches profile sim", lines);
    }

    [Fact]
    public async Task Settings_of_another_profile_file_are_compared_with_the_board_and_json_lists_them()
    {
        await using var controller = await ControllerFixture.StartAsync();
        var other = Path.Combine(_dir.FullName, "other.json");
        await File.WriteAllTextAsync(other, ProfileText("desk-200.json").Replace("\"maxTravelMm\": { \"x\": 200", "\"maxTravelMm\": { \"x\": 300", StringComparison.Ordinal));

        var (code, stdout, _) = await Smp(controller, "machine", "settings", "--profile", other, "--json");

        Assert.Equal(ExitCodes.Success, code);
        var obj = JsonNode.Parse(stdout.Trim())!.AsObject();
        Assert.Equal("desk-200", (string)obj["profileName"]!);
        Assert.True((bool)obj["checked"]!);
        Assert.Contains("$130=300.000", obj["lines"]!.AsArray().Select(n => (string)n!));
        var difference = Assert.Single(obj["differences"]!.AsArray());
        Assert.Equal((130, "300.000", "200.000"), ((int)difference!["number"]!, (string)difference["expected"]!, (string)difference["actual"]!));
        Assert.Equal(0, (int)obj["exitCode"]!);
    }

    [Fact]
    public async Task A_bad_profile_file_is_bad_input()
    {
        await using var controller = await ControllerFixture.StartAsync();
        var bad = Path.Combine(_dir.FullName, "bad.json");
        await File.WriteAllTextAsync(bad, "{ \"name\": \"half a profile\" }");

        var (code, _, stderr) = await Smp(controller, "machine", "settings", "--profile", bad);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("not valid", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await Smp(controller, "machine", "settings", "--profile", Path.Combine(_dir.FullName, "missing.json"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("not found", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misconfigured_board_shows_in_status_settings_and_the_grpc_reply()
    {
        await using var controller = await StartWithMisconfiguredBoardAsync();

        var status = await controller.Machine.GetStatusAsync(new GetMachineStatusRequest()).ResponseAsync.WaitAsync(ControllerFixture.Timeout);
        Assert.True(status.SettingsChecked);
        var difference = Assert.Single(status.SettingsDifferences);
        Assert.Equal((100, "80.000", "100.000", false), (difference.Number, difference.Expected, difference.Actual, difference.Informative));
        Assert.Contains("$100 (X steps/mm): profile 80.000, board 100.000", status.SettingsProblem, StringComparison.Ordinal);

        var (code, stdout, _) = await Smp(controller, "machine", "status");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("Settings  DIFFER from the profile (sessions refused): ", stdout, StringComparison.Ordinal);
        Assert.Contains("$100 (X steps/mm): profile 80.000, board 100.000", stdout, StringComparison.Ordinal);

        (code, stdout, _) = await Smp(controller, "machine", "settings");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("; board DIFFERS from profile sim", stdout, StringComparison.Ordinal);
        Assert.Contains(";   $100 (X steps/mm): profile 80.000, board 100.000", stdout, StringComparison.Ordinal);

        // The profile the board was set up for matches it.
        var matching = ProfileText("sim.json").Replace("\"x\": 80, \"y\": 80, \"z\": 400", "\"x\": 100, \"y\": 80, \"z\": 400", StringComparison.Ordinal);
        var reply = await controller.Machine.FirmwareSettingsAsync(new FirmwareSettingsRequest { ProfileJson = matching }).ResponseAsync.WaitAsync(ControllerFixture.Timeout);
        Assert.True(reply.Checked);
        Assert.Empty(reply.Differences);
    }

    [Fact]
    public async Task Status_of_a_matching_board_says_so()
    {
        await using var controller = await ControllerFixture.StartAsync();
        var (code, stdout, _) = await Smp(controller, "machine", "status");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("Settings  match the profile", stdout, StringComparison.Ordinal);

        var e = await Assert.ThrowsAsync<RpcException>(() => controller.Machine.FirmwareSettingsAsync(new FirmwareSettingsRequest { ProfileJson = "[]" }).ResponseAsync).WaitAsync(ControllerFixture.Timeout);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task Status_exits_1_while_the_gantry_is_not_connected_and_the_power_on_alarm_lock_is_explained()
    {
        await using var offline = await ControllerFixture.StartAsync(configure: o => o with { ConnectAtStart = false });
        var (code, stdout, stderr) = await Smp(offline, "machine", "status");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("NOT CONNECTED", stdout, StringComparison.Ordinal);
        Assert.Contains("smp machine connect", stderr, StringComparison.Ordinal);

        // Connected, not homed: grbl's alarm lock is not shown as "State Alarm" next to "Alarm -".
        await using var online = await ControllerFixture.StartAsync();
        (code, stdout, _) = await Smp(online, "machine", "status");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("State     Alarm, NOT homed", stdout, StringComparison.Ordinal);
        Assert.Contains("Alarm     locked until homed", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Alarm     -", stdout, StringComparison.Ordinal);
    }
}
