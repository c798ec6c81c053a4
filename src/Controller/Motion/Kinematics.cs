using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Motion;

/// <summary>
/// Trapezoidal (constant acceleration) motion of one straight move that starts and ends at rest,
/// with grbl's per-axis limiting: the move's feed and acceleration are the largest values that keep
/// every axis within its own limits along the move's direction. Used by the simulated gantry to
/// execute moves and by sessions to compute the kinematic lower bound of a path.
/// </summary>
public readonly record struct TrapezoidMove(Vec3 From, Vec3 To, double CruiseMmPerS, double AccelMmPerS2)
{
    /// <summary>Path length, mm.</summary>
    public double Length => From.DistanceTo(To);

    /// <summary>Peak speed actually reached (a triangle profile when the move is short), mm/s.</summary>
    public double PeakMmPerS => Length <= 0 ? 0 : Math.Min(CruiseMmPerS, Math.Sqrt(AccelMmPerS2 * Length));

    /// <summary>Duration from rest to rest, seconds.</summary>
    public double DurationSeconds
    {
        get
        {
            var d = Length;
            if (d <= 0) return 0;
            var v = PeakMmPerS;
            var accelTime = v / AccelMmPerS2;
            var rampsDist = v * v / AccelMmPerS2; // both ramps together
            var cruiseSeconds = Math.Max(0, (d - rampsDist) / CruiseMmPerS);
            return (2 * accelTime) + cruiseSeconds;
        }
    }

    /// <summary>Distance travelled along the move after <paramref name="t"/> seconds, mm.</summary>
    public double DistanceAt(double t)
    {
        var d = Length;
        if (d <= 0 || t <= 0) return 0;
        var total = DurationSeconds;
        if (t >= total) return d;
        var v = PeakMmPerS;
        var accelTime = v / AccelMmPerS2;
        if (t < accelTime) return 0.5 * AccelMmPerS2 * t * t;
        var accelDist = 0.5 * v * v / AccelMmPerS2;
        var decelStart = total - accelTime;
        if (t < decelStart) return accelDist + (v * (t - accelTime));
        var td = total - t;
        return d - (0.5 * AccelMmPerS2 * td * td);
    }

    /// <summary>Speed along the move at <paramref name="t"/> seconds, mm/s.</summary>
    public double SpeedAt(double t)
    {
        var total = DurationSeconds;
        if (t <= 0 || t >= total) return 0;
        var v = PeakMmPerS;
        var accelTime = v / AccelMmPerS2;
        if (t < accelTime) return AccelMmPerS2 * t;
        if (t < total - accelTime) return v;
        return AccelMmPerS2 * (total - t);
    }

    /// <summary>Position at <paramref name="t"/> seconds.</summary>
    public Vec3 PositionAt(double t)
    {
        var d = Length;
        if (d <= 0) return To;
        var s = DistanceAt(t);
        return s >= d ? To : From + ((To - From) * (s / d));
    }
}

/// <summary>Builds <see cref="TrapezoidMove"/>s under a profile's limits.</summary>
public sealed class Kinematics(MachineProfile profile)
{
    /// <summary>The profile whose limits apply.</summary>
    public MachineProfile Profile => profile;

    /// <summary>
    /// A move from <paramref name="from"/> to <paramref name="to"/>. <paramref name="feedMmPerMin"/> is
    /// the requested feed; null means a rapid (G0: each axis at its max rate).
    /// </summary>
    public TrapezoidMove Move(Vec3 from, Vec3 to, double? feedMmPerMin)
    {
        var delta = to - from;
        var length = delta.Length;
        if (length <= 0) return new TrapezoidMove(from, to, 1, 1);
        double maxRate = double.PositiveInfinity, maxAccel = double.PositiveInfinity;
        for (var a = 0; a < 3; a++)
        {
            var unit = Math.Abs(a switch { 0 => delta.X, 1 => delta.Y, _ => delta.Z }) / length;
            if (unit <= 1e-12) continue;
            maxRate = Math.Min(maxRate, profile.MaxRateMmPerMin[a] / 60.0 / unit);
            maxAccel = Math.Min(maxAccel, profile.AccelerationMmPerS2[a] / unit);
        }
        var cruise = feedMmPerMin is { } f ? Math.Min(f / 60.0, maxRate) : maxRate;
        return new TrapezoidMove(from, to, cruise, maxAccel);
    }

    /// <summary>Duration of a move, seconds.</summary>
    public double Seconds(Vec3 from, Vec3 to, double? feedMmPerMin) => Move(from, to, feedMmPerMin).DurationSeconds;
}
