using System.Globalization;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Motion;

/// <summary>One firmware line with the move it makes (for the kinematic bound).</summary>
/// <param name="Line">G-code as written to the wire.</param>
/// <param name="KinematicSeconds">Pure motion or dwell time of this line under the profile's limits.</param>
public readonly record struct ProgramLine(string Line, double KinematicSeconds);

/// <summary>
/// Turns aimed targets into firmware lines on the machine's step grid. All coordinates are machine
/// coordinates (G53 is our only frame: G90 absolute, G21 mm are set once per session).
/// </summary>
public sealed class DotProgram(MachineProfile profile)
{
    private readonly Kinematics _kinematics = new(profile);
    private readonly StepGrid _grid = new(profile.StepsPerMm);

    /// <summary>The grid every commanded point lies on.</summary>
    public StepGrid Grid => _grid;

    /// <summary>A G4 P0: its ok arrives only once all earlier motion has finished (a true sync point).</summary>
    public static readonly ProgramLine Sync = new("G4 P0", 0);

    /// <summary>Lines that set the modal state a session relies on, and start the needle drive.</summary>
    public IReadOnlyList<ProgramLine> SessionPreamble() =>
    [
        new("G21 G90", 0),
        new(FormattableString.Invariant($"M3 S{profile.Needle.SpindleSpeed:0}"), 0),
    ];

    /// <summary>Lines that stop the needle drive.</summary>
    public static IReadOnlyList<ProgramLine> SessionPostamble() => [new("M5", 0)];

    /// <summary>
    /// Travel from <paramref name="from"/> to the hover point <paramref name="hover"/> without
    /// lowering the needle on the way: climb first when the target is higher, descend last when lower.
    /// Both points must be on the grid.
    /// </summary>
    public IReadOnlyList<ProgramLine> Travel(Vec3 from, Vec3 hover)
    {
        var lines = new List<ProgramLine>(3);
        var current = from;
        if (hover.Z > current.Z)
        {
            lines.Add(Move(ref current, current with { Z = hover.Z }, profile.PlungeFeedMmPerMin));
        }
        if (current.X != hover.X || current.Y != hover.Y)
        {
            lines.Add(Move(ref current, current with { X = hover.X, Y = hover.Y }, profile.TravelFeedMmPerMin));
        }
        if (current.Z != hover.Z)
        {
            lines.Add(Move(ref current, hover, profile.PlungeFeedMmPerMin));
        }
        return lines;
    }

    /// <summary>Plunge from hover to depth, dwell, retract to hover, then a sync line whose ok confirms it all happened.</summary>
    public IReadOnlyList<ProgramLine> Place(Vec3 hover, Vec3 depth, double dwellMs)
    {
        var current = hover;
        var dwellSeconds = dwellMs / 1000.0;
        return
        [
            Move(ref current, depth, profile.PlungeFeedMmPerMin),
            new(string.Create(CultureInfo.InvariantCulture, $"G4 P{dwellSeconds:0.0##}"), dwellSeconds),
            Move(ref current, hover, profile.PlungeFeedMmPerMin),
            Sync,
        ];
    }

    /// <summary>A straight feed move to <paramref name="to"/> (on the grid).</summary>
    public ProgramLine Move(ref Vec3 current, Vec3 to, double feedMmPerMin)
    {
        var seconds = _kinematics.Seconds(current, to, feedMmPerMin);
        var line = "G1 X" + StepGrid.Format(to.X) + " Y" + StepGrid.Format(to.Y) + " Z" + StepGrid.Format(to.Z)
            + " F" + feedMmPerMin.ToString("0", CultureInfo.InvariantCulture);
        current = to;
        return new ProgramLine(line, seconds);
    }
}
