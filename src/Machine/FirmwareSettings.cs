using System.Globalization;
using System.Text;

namespace SmpRobot.Machine;

/// <summary>How a setting's value is written and compared.</summary>
public enum FirmwareSettingKind
{
    /// <summary>A real number, written with 3 decimals as grbl reports it; compared with a relative tolerance.</summary>
    Number,
    /// <summary>0 or 1; compared exactly.</summary>
    Boolean,
    /// <summary>An axis bit mask; compared exactly.</summary>
    Mask,
}

/// <summary>One grbl setting a profile depends on: <c>$Number=Value</c>.</summary>
/// <param name="Number">The setting number, e.g. 100 for X steps/mm.</param>
/// <param name="Name">What it is, in words, with its unit.</param>
/// <param name="Value">The value as it is written to the firmware (invariant culture).</param>
/// <param name="Kind">How the value is compared.</param>
/// <param name="Informative">
/// True for settings the profile cannot know (step and direction inversion follow the wiring):
/// listed with grbl's default, reported when the board differs, never a reason to refuse a session.
/// </param>
public sealed record FirmwareSetting(int Number, string Name, string Value, FirmwareSettingKind Kind, bool Informative = false)
{
    /// <summary><c>$100=80.000</c>.</summary>
    public string Line => "$" + Number.ToString(CultureInfo.InvariantCulture) + "=" + Value;
}

/// <summary>A setting whose value on the board is not the profile's.</summary>
/// <param name="Actual">The board's value, or <see cref="FirmwareSettings.NotReported"/> when the board did not list it.</param>
public sealed record SettingDifference(int Number, string Name, string Expected, string Actual, bool Informative)
{
    /// <summary><c>$100 (X steps/mm): profile 80.000, board 100.000</c>.</summary>
    public override string ToString() =>
        "$" + Number.ToString(CultureInfo.InvariantCulture) + " (" + Name + "): profile " + Expected + ", board " + Actual + (Informative ? " (informative)" : "");
}

/// <summary>
/// The grbl settings (<c>$N=value</c>) a machine profile depends on, and their comparison with what
/// a board reports to <c>$$</c>. The controller plans every move with the profile's steps/mm, rates,
/// accelerations and envelope: a board configured differently would move to other places at other
/// speeds than the ones checked, so a mismatch refuses sessions.
/// </summary>
public static class FirmwareSettings
{
    /// <summary>Relative tolerance of number settings (grbl stores floats and prints 3 decimals).</summary>
    public const double RelativeTolerance = 1e-3;

    /// <summary>Absolute tolerance of number settings: half of grbl's last printed decimal.</summary>
    public const double AbsoluteTolerance = 5e-4;

    /// <summary>The <see cref="SettingDifference.Actual"/> of a setting the board did not list.</summary>
    public const string NotReported = "(not reported)";

    /// <summary>
    /// The settings <paramref name="profile"/> depends on, in an order grbl accepts when they are pasted
    /// line by line: $2 and $3 (informative), $10 status report mask, $13=0 (report mm), $22 homing,
    /// $23 homing direction mask, $27 homing pull-off, $100-$102 steps/mm, $110-$112 max rates mm/min,
    /// $120-$122 accelerations mm/s², $130-$132 max travel mm, and $20 soft limits last (grbl refuses
    /// <c>$20=1</c> with error:10 while homing is off).
    /// </summary>
    public static IReadOnlyList<FirmwareSetting> Expected(MachineProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var list = new List<FirmwareSetting>(21)
        {
            new(2, "step pulse invert mask", "0", FirmwareSettingKind.Mask, Informative: true),
            new(3, "direction invert mask", "0", FirmwareSettingKind.Mask, Informative: true),
            // Machine position and the buffer state in every status report: the controller reads both.
            new(10, "status report mask", profile.StatusReportMask.ToString(CultureInfo.InvariantCulture), FirmwareSettingKind.Mask),
            // Status reports and settings must be in mm: every position the controller reads is mm.
            new(13, "report in inches", "0", FirmwareSettingKind.Boolean),
            new(22, "homing cycle", profile.HomingEnabled ? "1" : "0", FirmwareSettingKind.Boolean),
            // Where homing ends and so where the machine frame lies (MachineProfile.Envelope).
            new(23, "homing direction invert mask", profile.HomingDirectionMask.ToString(CultureInfo.InvariantCulture), FirmwareSettingKind.Mask),
            Number(27, "homing pull-off, mm", profile.HomingPullOffMm),
        };
        for (var a = 0; a < 3; a++) list.Add(Number(100 + a, $"{"XYZ"[a]} steps/mm", profile.StepsPerMm[a]));
        for (var a = 0; a < 3; a++) list.Add(Number(110 + a, $"{"XYZ"[a]} max rate, mm/min", profile.MaxRateMmPerMin[a]));
        for (var a = 0; a < 3; a++) list.Add(Number(120 + a, $"{"XYZ"[a]} acceleration, mm/s^2", profile.AccelerationMmPerS2[a]));
        for (var a = 0; a < 3; a++) list.Add(Number(130 + a, $"{"XYZ"[a]} max travel, mm", profile.MaxTravelMm[a]));
        list.Add(new(20, "soft limits", profile.SoftLimits ? "1" : "0", FirmwareSettingKind.Boolean));
        return list;
    }

    /// <summary>
    /// Compares <paramref name="expected"/> with the board's <c>$$</c> answer. Numbers match within
    /// <see cref="RelativeTolerance"/> (or <see cref="AbsoluteTolerance"/> near zero); booleans and
    /// masks exactly. A required setting the board did not list is a difference; an informative one
    /// is only reported when the board lists another value. Returns the differences in the order
    /// of <paramref name="expected"/>; empty when the board matches.
    /// </summary>
    public static IReadOnlyList<SettingDifference> Compare(IReadOnlyList<FirmwareSetting> expected, IReadOnlyDictionary<int, string> actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        var differences = new List<SettingDifference>();
        foreach (var setting in expected)
        {
            if (!actual.TryGetValue(setting.Number, out var boardValue))
            {
                if (!setting.Informative)
                {
                    differences.Add(new SettingDifference(setting.Number, setting.Name, setting.Value, NotReported, false));
                }
                continue;
            }
            if (!Matches(setting, boardValue.Trim()))
            {
                differences.Add(new SettingDifference(setting.Number, setting.Name, setting.Value, boardValue.Trim(), setting.Informative));
            }
        }
        return differences;
    }

    /// <summary>True when no difference is a required one (informative ones do not count).</summary>
    public static bool AllRequiredMatch(IEnumerable<SettingDifference> differences) => differences.All(d => d.Informative);

    /// <summary>The <c>$N=value</c> lines of the required settings, one per line, ready to paste into a grbl terminal.</summary>
    public static string ToLines(IEnumerable<FirmwareSetting> settings) =>
        string.Join('\n', settings.Where(s => !s.Informative).Select(s => s.Line));

    /// <summary>
    /// The operator's message for a board that does not match, listing every required difference;
    /// null when everything required matches.
    /// </summary>
    public static string? MismatchMessage(string gantry, string profileName, IReadOnlyList<SettingDifference> differences)
    {
        var required = differences.Where(d => !d.Informative).ToList();
        if (required.Count == 0) return null;
        var sb = new StringBuilder();
        sb.Append("the firmware settings of ").Append(gantry).Append(" do not match profile ").Append(profileName).Append(": ");
        sb.AppendJoin("; ", required.Select(d => d.ToString()));
        sb.Append(". Set them on the board (smp machine settings prints the $ lines), then reconnect");
        return sb.ToString();
    }

    /// <summary>Parses a profile file's text (the format of hardware/profiles/*.json) and checks it.</summary>
    /// <exception cref="InvalidDataException">Not a valid profile.</exception>
    public static MachineProfile ParseProfile(string json, string source) => MachineProfile.Parse(json, source);

    private static FirmwareSetting Number(int number, string name, double value) =>
        new(number, name, value.ToString("0.000", CultureInfo.InvariantCulture), FirmwareSettingKind.Number);

    private static bool Matches(FirmwareSetting setting, string boardValue)
    {
        if (setting.Kind == FirmwareSettingKind.Number)
        {
            if (!double.TryParse(boardValue, NumberStyles.Float, CultureInfo.InvariantCulture, out var board) || !double.IsFinite(board)) return false;
            var want = double.Parse(setting.Value, NumberStyles.Float, CultureInfo.InvariantCulture);
            var tolerance = Math.Max(AbsoluteTolerance, RelativeTolerance * Math.Max(Math.Abs(want), Math.Abs(board)));
            return Math.Abs(board - want) <= tolerance;
        }
        // Booleans and masks are integers; grbl prints them without decimals.
        return int.TryParse(boardValue, NumberStyles.None, CultureInfo.InvariantCulture, out var boardInt)
            && boardInt == int.Parse(setting.Value, NumberStyles.None, CultureInfo.InvariantCulture);
    }
}
