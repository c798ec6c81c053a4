using SmpRobot.Geometry;

namespace SmpRobot.Machine;

/// <summary>
/// The machine's step grid: every commanded point is a whole number of steps on each axis, so what
/// goes on the wire is exactly reachable (no rounding left to the firmware).
/// </summary>
public sealed class StepGrid(AxisValues stepsPerMm)
{
    /// <summary>Nearest grid point to <paramref name="p"/>, mm.</summary>
    public Vec3 Quantise(Vec3 p) => new(
        Math.Round(p.X * stepsPerMm.X, MidpointRounding.AwayFromZero) / stepsPerMm.X,
        Math.Round(p.Y * stepsPerMm.Y, MidpointRounding.AwayFromZero) / stepsPerMm.Y,
        Math.Round(p.Z * stepsPerMm.Z, MidpointRounding.AwayFromZero) / stepsPerMm.Z);

    /// <summary>Steps of <paramref name="p"/> on each axis (p should be on the grid).</summary>
    public (long X, long Y, long Z) ToSteps(Vec3 p) => (
        (long)Math.Round(p.X * stepsPerMm.X, MidpointRounding.AwayFromZero),
        (long)Math.Round(p.Y * stepsPerMm.Y, MidpointRounding.AwayFromZero),
        (long)Math.Round(p.Z * stepsPerMm.Z, MidpointRounding.AwayFromZero));

    /// <summary>
    /// Formats a coordinate for G-code with enough decimals to name the grid point exactly
    /// (grbl parses up to 8 significant digits; 4 decimals cover steps/mm up to 10,000).
    /// </summary>
    public static string Format(double mm) => mm.ToString("0.0####", System.Globalization.CultureInfo.InvariantCulture);
}
