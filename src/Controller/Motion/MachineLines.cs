using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Motion;

/// <summary>
/// The firmware lines that are not part of a dot's program: the needle drive off, the modal state a
/// manual move relies on, a jog, and the stop sequence's straight-up retract. With
/// <see cref="DotProgram"/>, the only place G-code is written.
/// </summary>
public static class MachineLines
{
    /// <summary>Stops the needle drive (grbl's spindle off).</summary>
    public static readonly ProgramLine DriveOff = new("M5", 0);

    /// <summary>Absolute millimetres: the modal state every absolute travel line relies on.</summary>
    public static readonly ProgramLine AbsoluteMm = new("G21 G90", 0);

    /// <summary>Clears grbl's alarm lock (<c>$X</c>) after a reset that kept the gantry where it stopped.</summary>
    public static readonly ProgramLine Unlock = new("$X", 0);

    /// <summary>The homing cycle (<c>$H</c>; its ok arrives when homing is done).</summary>
    public const string Home = "$H";

    /// <summary>
    /// grbl's check-mode toggle (<c>$C</c>): on, the firmware parses and limit-checks lines without
    /// moving; sent again (or after any reset) it is off. See <c>Sessions.CheckMode</c>.
    /// </summary>
    public const string CheckModeToggle = "$C";

    /// <summary>
    /// A jog to <paramref name="targetMm"/> (machine coordinates, on the step grid) at
    /// <paramref name="feedMmPerMin"/>: grbl's <c>$J=</c>, which a jog cancel stops and which never
    /// changes the modal state of the program around it.
    /// </summary>
    public static ProgramLine Jog(Vec3 targetMm, double feedMmPerMin, double kinematicSeconds) =>
        new("$J=G90 G21 X" + StepGrid.Format(targetMm.X) + " Y" + StepGrid.Format(targetMm.Y) + " Z" + StepGrid.Format(targetMm.Z)
            + " F" + feedMmPerMin.ToString("0", CultureInfo.InvariantCulture), kinematicSeconds);

    /// <summary>Fastest probe feed, mm/min: a skin-contact probe must touch slowly (it stops only after decelerating past the contact).</summary>
    public const double MaxProbeFeedMmPerMin = 300;

    /// <summary>
    /// A probe cycle straight down by at most <paramref name="downMm"/> (positive, on the grid) at
    /// <paramref name="feedMmPerMin"/>: grbl's <c>G38.2</c>, which stops at the contact, reports
    /// <c>[PRB:…]</c> before its ok, and alarms (ALARM:5) when nothing is touched within the distance.
    /// Relative, as every Z move here, and bounded by <see cref="DotProgram.MaxVerticalStepMm"/>. G38.2 stays
    /// the modal motion mode afterwards: every other line here names its own (G0, G1), so none can become a probe.
    /// </summary>
    public static ProgramLine ProbeDown(double downMm, double feedMmPerMin) => Probe("G38.2", downMm, feedMmPerMin);

    /// <summary>
    /// A descent that watches the probe input without alarming: grbl's <c>G38.3</c> stops at a contact and reports it
    /// (<c>[PRB:…:1]</c>), or runs its distance and reports none (<c>:0</c>). Every move towards the skin while the probe
    /// is fitted is one of these, so a skin higher than expected is touched, seen and reported, never pressed into.
    /// </summary>
    public static ProgramLine DescendWatching(double downMm, double feedMmPerMin) => Probe("G38.3", downMm, feedMmPerMin);

    private static ProgramLine Probe(string mode, double downMm, double feedMmPerMin)
    {
        if (!(downMm > 0) || downMm > DotProgram.MaxVerticalStepMm) throw new ArgumentOutOfRangeException(nameof(downMm), downMm, FormattableString.Invariant($"a probe goes down by more than 0 and at most {DotProgram.MaxVerticalStepMm} mm"));
        if (!(feedMmPerMin > 0) || feedMmPerMin > MaxProbeFeedMmPerMin) throw new ArgumentOutOfRangeException(nameof(feedMmPerMin), feedMmPerMin, FormattableString.Invariant($"a probe feed is more than 0 and at most {MaxProbeFeedMmPerMin} mm/min"));
        var distance = StepGrid.Format(downMm);
        return new(mode + " G91 Z-" + distance + " F" + feedMmPerMin.ToString("0.#", CultureInfo.InvariantCulture), downMm / feedMmPerMin * 60);
    }

    /// <summary>
    /// The stop sequence's retract: straight up by <paramref name="upMm"/> (positive, on the grid) at the
    /// rapid rate, relative and at most <see cref="DotProgram.MaxVerticalStepMm"/>, like every session Z
    /// move, so a corrupted byte cannot turn "up" into "deep".
    /// </summary>
    public static ProgramLine RetractStraightUp(double upMm)
    {
        if (!(upMm > 0)) throw new ArgumentOutOfRangeException(nameof(upMm), "a retract goes up");
        return new("G91 G0 Z" + StepGrid.Format(Math.Min(upMm, DotProgram.MaxVerticalStepMm)), 0);
    }
}
