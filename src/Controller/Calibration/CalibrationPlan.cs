using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Calibration;

/// <summary>Where the gantry calibration stops: points spread evenly over a box at several heights.</summary>
public static class CalibrationPlan
{
    /// <summary>
    /// <paramref name="points"/> needle-tip positions in <paramref name="volume"/>, on
    /// <paramref name="heights"/> evenly spaced levels from its bottom to its top (points shared out
    /// as evenly as possible, lower levels first). Within a level, positions follow a Halton sequence
    /// (bases 2 and 3; a different stretch per level so levels do not repeat one pattern) inset 5 %
    /// from the box's sides: well spread for any count, and the same for the same arguments. Points are
    /// quantised to the step grid. Needs heights ≥ 2 and at least 2 points per height.
    /// </summary>
    public static IReadOnlyList<Vec3> Stops(CalibrationVolume volume, int points, int heights, StepGrid grid)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(grid);
        if (heights < 2) throw new ArgumentOutOfRangeException(nameof(heights), heights, "at least 2 heights");
        if (points < 2 * heights) throw new ArgumentOutOfRangeException(nameof(points), points, $"at least 2 points per height ({2 * heights})");
        var min = volume.Min;
        var max = volume.Max;
        var insetX = (max.X - min.X) * 0.05;
        var insetY = (max.Y - min.Y) * 0.05;
        var stops = new List<Vec3>(points);
        for (var level = 0; level < heights; level++)
        {
            var z = min.Z + ((max.Z - min.Z) * level / (heights - 1));
            var count = (points / heights) + (level < points % heights ? 1 : 0);
            var level0 = new List<Vec3>(count);
            for (var i = 0; i < count; i++)
            {
                var k = 1 + i + (level * 7);
                var u = Halton(k, 2);
                var v = Halton(k, 3);
                level0.Add(grid.Quantise(new Vec3(min.X + insetX + (u * (max.X - min.X - (2 * insetX))), min.Y + insetY + (v * (max.Y - min.Y - (2 * insetY))), z)));
            }
            // Serpentine by Y rows of the level, so travel stays short.
            stops.AddRange(level0.OrderBy(p => Math.Round((p.Y - min.Y) / Math.Max(1e-9, max.Y - min.Y) * 4)).ThenBy(p => p.X));
        }
        return stops;
    }

    private static double Halton(int index, int radix)
    {
        var result = 0.0;
        var f = 1.0 / radix;
        for (var i = index; i > 0; i /= radix)
        {
            result += f * (i % radix);
            f /= radix;
        }
        return result;
    }
}
