using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Machine;

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
        MachineLines.AbsoluteMm,
        new(FormattableString.Invariant($"M3 S{profile.Needle.SpindleSpeed:0}"), 0),
    ];

    /// <summary>Lines that stop the needle drive.</summary>
    public static IReadOnlyList<ProgramLine> SessionPostamble() => [MachineLines.DriveOff];

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
            AddVertical(lines, ref current, hover.Z);
        }
        if (current.X != hover.X || current.Y != hover.Y)
        {
            lines.Add(MoveXy(ref current, hover.X, hover.Y, profile.TravelFeedMmPerMin));
        }
        if (current.Z != hover.Z)
        {
            AddVertical(lines, ref current, hover.Z);
        }
        return lines;
    }

    /// <summary>Longest vertical move one line carries (single-digit distance; see <see cref="MoveZ"/>).</summary>
    public const double MaxVerticalStepMm = 9;

    private void AddVertical(List<ProgramLine> lines, ref Vec3 current, double zMm)
    {
        while (Math.Abs(zMm - current.Z) > MaxVerticalStepMm)
        {
            var step = _grid.Quantise(current with { Z = current.Z + (Math.Sign(zMm - current.Z) * MaxVerticalStepMm) }).Z;
            lines.Add(MoveZ(ref current, step, profile.PlungeFeedMmPerMin));
        }
        lines.Add(MoveZ(ref current, zMm, profile.PlungeFeedMmPerMin));
    }

    /// <summary>Plunge from hover to depth, dwell, retract to hover, then a sync line whose ok confirms it all happened.</summary>
    public IReadOnlyList<ProgramLine> Place(Vec3 hover, Vec3 depth, double dwellMs)
    {
        if (hover.X != depth.X || hover.Y != depth.Y) throw new ArgumentException("a plunge is straight down: hover and depth must share X and Y");
        var current = hover;
        var dwellSeconds = dwellMs / 1000.0;
        return
        [
            MoveZ(ref current, depth.Z, profile.PlungeFeedMmPerMin),
            new(string.Create(CultureInfo.InvariantCulture, $"G4 P{dwellSeconds:0.0##}"), dwellSeconds),
            MoveZ(ref current, hover.Z, profile.PlungeFeedMmPerMin),
            Sync,
        ];
    }

    /// <summary>
    /// A horizontal move in absolute coordinates that carries no Z word, so no corruption of this
    /// line on the wire can move the needle down.
    /// </summary>
    public ProgramLine MoveXy(ref Vec3 current, double xMm, double yMm, double feedMmPerMin)
    {
        var to = current with { X = xMm, Y = yMm };
        var seconds = _kinematics.Seconds(current, to, feedMmPerMin);
        current = to;
        return new ProgramLine("G90 G1 X" + StepGrid.Format(xMm) + " Y" + StepGrid.Format(yMm) + " F" + Feed(feedMmPerMin), seconds);
    }

    /// <summary>
    /// A vertical move written as a relative distance (G91). grbl has no checksums and serial
    /// adapters drop bytes: with a single-digit distance, a lost byte makes grbl refuse the line,
    /// moves up or shallower, changes the depth by at most a last-decimal amount, or asks for a
    /// target so far away that the soft limits refuse it. An absolute Z (e.g. Z21.3 → Z1.3) could
    /// instead drive the needle 20 mm deeper.
    /// </summary>
    public ProgramLine MoveZ(ref Vec3 current, double zMm, double feedMmPerMin)
    {
        var to = current with { Z = zMm };
        var deltaSteps = Math.Round((zMm - current.Z) * profile.StepsPerMm.Z, MidpointRounding.AwayFromZero);
        var deltaMm = deltaSteps / profile.StepsPerMm.Z;
        if (Math.Abs(deltaMm) >= 10)
        {
            throw new ArgumentOutOfRangeException(nameof(zMm), $"a {deltaMm:0.###} mm vertical move is longer than one line may carry (< 10 mm); split it");
        }
        var seconds = _kinematics.Seconds(current, to, feedMmPerMin);
        current = to;
        return new ProgramLine("G91 G1 Z" + StepGrid.Format(deltaMm) + " F" + Feed(feedMmPerMin), seconds);
    }

    private static string Feed(double feedMmPerMin) => feedMmPerMin.ToString("0", CultureInfo.InvariantCulture);
}
