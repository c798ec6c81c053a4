using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Connect;

public class FirmwareSettingsTests
{
    /// <summary>What a board configured exactly for <paramref name="profile"/> answers to $$ (grbl prints 3 decimals).</summary>
    internal static Dictionary<int, string> BoardFor(MachineProfile profile) =>
        FirmwareSettings.Expected(profile).ToDictionary(s => s.Number, s => s.Value);

    [Fact]
    public void Expected_lists_every_setting_the_profile_depends_on_with_its_value()
    {
        var expected = FirmwareSettings.Expected(TestProfiles.Desk());
        var byNumber = expected.ToDictionary(s => s.Number);

        int[] required = [10, 13, 20, 22, 23, 27, 100, 101, 102, 110, 111, 112, 120, 121, 122, 130, 131, 132];
        Assert.Equal(required.Concat([2, 3]).Order(), byNumber.Keys.Order());
        Assert.All(required, n => Assert.False(byNumber[n].Informative, $"${n} must be required"));
        Assert.True(byNumber[2].Informative);
        Assert.True(byNumber[3].Informative);

        Assert.Equal("$100=80.000", byNumber[100].Line);
        Assert.Equal("$102=400.000", byNumber[102].Line);
        Assert.Equal("$110=6000.000", byNumber[110].Line);
        Assert.Equal("$112=1200.000", byNumber[112].Line);
        Assert.Equal("$121=800.000", byNumber[121].Line);
        Assert.Equal("$122=400.000", byNumber[122].Line);
        Assert.Equal("$130=200.000", byNumber[130].Line);
        Assert.Equal("$132=40.000", byNumber[132].Line);
        Assert.Equal("$13=0", byNumber[13].Line);
        Assert.Equal("$20=1", byNumber[20].Line);
        Assert.Equal("$22=1", byNumber[22].Line);
        Assert.Equal("$10=3", byNumber[10].Line);
        Assert.Equal("$23=0", byNumber[23].Line);
        Assert.Equal("$27=1.000", byNumber[27].Line);
        // In an order grbl accepts line by line: homing before soft limits (else error:10).
        var order = expected.Select(s => s.Number).ToList();
        Assert.True(order.IndexOf(22) < order.IndexOf(20), string.Join(",", order));

        var noLimits = FirmwareSettings.Expected(TestProfiles.Desk() with { SoftLimits = false, HomingEnabled = false }).ToDictionary(s => s.Number);
        Assert.Equal("0", noLimits[20].Value);
        Assert.Equal("0", noLimits[22].Value);
    }

    [Fact]
    public void A_board_with_the_profile_values_matches_within_tolerance()
    {
        var profile = TestProfiles.Desk();
        var board = BoardFor(profile);
        board[100] = "80.05";        // 6e-4 relative: float storage and printing noise
        board[132] = "40.0000001";
        board[20] = " 1 ";
        board[3] = "0";
        board[11] = "0.020";         // settings the profile does not depend on are ignored
        Assert.Empty(FirmwareSettings.Compare(FirmwareSettings.Expected(profile), board));
    }

    [Fact]
    public void Differences_name_the_setting_the_expected_and_the_actual_value()
    {
        var profile = TestProfiles.Desk();
        var board = BoardFor(profile);
        board[100] = "100.000";      // 25 % off
        board[112] = "1202.000";     // 1.7e-3 relative: beyond the tolerance
        board[20] = "0";
        board[13] = "1";
        board.Remove(131);
        board[120] = "fast";

        var differences = FirmwareSettings.Compare(FirmwareSettings.Expected(profile), board);

        Assert.Equal([13, 100, 112, 120, 131, 20], differences.Select(d => d.Number));
        var steps = differences.Single(d => d.Number == 100);
        Assert.Equal(("X steps/mm", "80.000", "100.000", false), (steps.Name, steps.Expected, steps.Actual, steps.Informative));
        Assert.Equal(FirmwareSettings.NotReported, differences.Single(d => d.Number == 131).Actual);
        Assert.Equal("$100 (X steps/mm): profile 80.000, board 100.000", steps.ToString());
        Assert.False(FirmwareSettings.AllRequiredMatch(differences));

        var message = FirmwareSettings.MismatchMessage("serial:/dev/ttyUSB0", "desk-200", differences);
        Assert.NotNull(message);
        foreach (var d in differences) Assert.Contains(d.ToString(), message, StringComparison.Ordinal);
        Assert.Contains("smp machine settings", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Informative_settings_are_reported_but_do_not_count_as_a_mismatch()
    {
        var profile = TestProfiles.Desk();
        var board = BoardFor(profile);
        board[3] = "5";              // X and Z directions inverted: wiring, not the profile's business
        board.Remove(2);             // not listed at all: not even reported

        var differences = FirmwareSettings.Compare(FirmwareSettings.Expected(profile), board);

        var single = Assert.Single(differences);
        Assert.Equal((3, "0", "5", true), (single.Number, single.Expected, single.Actual, single.Informative));
        Assert.True(FirmwareSettings.AllRequiredMatch(differences));
        Assert.Null(FirmwareSettings.MismatchMessage("sim", "desk-200", differences));
    }

    [Fact]
    public void Lines_are_the_required_settings_ready_to_paste()
    {
        var lines = FirmwareSettings.ToLines(FirmwareSettings.Expected(TestProfiles.Sim())).Split('\n');
        Assert.Equal(18, lines.Length);
        Assert.All(lines, l => Assert.Matches(@"^\$\d+=\d+(\.\d{3})?$", l));
        Assert.DoesNotContain(lines, l => l.StartsWith("$3=", StringComparison.Ordinal) || l.StartsWith("$2=", StringComparison.Ordinal));
    }

    [Fact]
    public void Profile_text_parses_like_a_profile_file_and_bad_text_is_refused()
    {
        var path = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "desk-200.json");
        var parsed = FirmwareSettings.ParseProfile(File.ReadAllText(path), "desk-200.json");
        var loaded = TestProfiles.Desk();
        Assert.Equal(loaded, parsed with { Pigments = loaded.Pigments }); // lists compare by reference
        Assert.Equal(loaded.Pigments, parsed.Pigments);
        Assert.Equal(FirmwareSettings.Expected(TestProfiles.Desk()), FirmwareSettings.Expected(parsed));

        Assert.Throws<InvalidDataException>(() => FirmwareSettings.ParseProfile("{ \"name\": \"x\" }", "x.json"));
        Assert.Throws<InvalidDataException>(() => FirmwareSettings.ParseProfile("not json", "y.json"));
        var negative = File.ReadAllText(path).Replace("\"x\": 80, \"y\": 80", "\"x\": -80, \"y\": 80", StringComparison.Ordinal);
        var e = Assert.Throws<InvalidDataException>(() => FirmwareSettings.ParseProfile(negative, "z.json"));
        Assert.Contains("stepsPerMm.X", e.Message, StringComparison.Ordinal);
    }
}
