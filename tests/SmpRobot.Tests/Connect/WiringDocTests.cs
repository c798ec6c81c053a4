using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Connect;

/// <summary>hardware/WIRING.md carries, for every bundled profile, the settings FirmwareSettings generates.</summary>
public class WiringDocTests
{
    private static readonly string HardwareDir = Path.Combine(TestProfiles.RepoRoot, "hardware");

    public static TheoryData<string> Profiles()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(HardwareDir, "profiles"), "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Wiring_doc_lists_the_generated_settings_of_each_profile(string file)
    {
        var profile = MachineProfile.Load(Path.Combine(HardwareDir, "profiles", file));
        var doc = File.ReadAllText(Path.Combine(HardwareDir, "WIRING.md")).ReplaceLineEndings("\n");
        var heading = $"### {profile.Name} (`profiles/{file}`)";
        var at = doc.IndexOf(heading, StringComparison.Ordinal);
        Assert.True(at >= 0, $"WIRING.md has no section '{heading}'");

        var fenceStart = doc.IndexOf("```\n", at, StringComparison.Ordinal) + 4;
        var fenceEnd = doc.IndexOf("\n```", fenceStart, StringComparison.Ordinal);
        var block = doc[fenceStart..fenceEnd];
        var expected = FirmwareSettings.ToLines(FirmwareSettings.Expected(profile));
        Assert.True(expected == block, $"the settings of {file} in WIRING.md are out of date; they must be:\n{expected}");
    }
}
