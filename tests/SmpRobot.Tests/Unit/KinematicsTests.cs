using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Unit;

public class KinematicsTests
{
    [Fact]
    public void Long_move_is_a_trapezoid_short_move_a_triangle()
    {
        // 100 mm at 50 mm/s with 500 mm/s²: ramps 0.1 s each (2.5 mm each), cruise 95 mm = 1.9 s.
        var longMove = new TrapezoidMove(Vec3.Zero, new Vec3(100, 0, 0), 50, 500);
        Assert.Equal(2.1, longMove.DurationSeconds, 9);
        Assert.Equal(50, longMove.PeakMmPerS, 9);
        // 1 mm: peak sqrt(500·1) ≈ 22.36 mm/s, duration 2·v/a.
        var shortMove = new TrapezoidMove(Vec3.Zero, new Vec3(1, 0, 0), 50, 500);
        Assert.Equal(2 * Math.Sqrt(500.0) / 500, shortMove.DurationSeconds, 9);
        Assert.Equal(1.0, shortMove.DistanceAt(shortMove.DurationSeconds), 9);
        Assert.Equal(0.5, shortMove.DistanceAt(shortMove.DurationSeconds / 2), 9);
    }

    [Fact]
    public void Diagonal_move_is_limited_by_each_axis()
    {
        var profile = TestProfiles.Desk();
        var k = new Kinematics(profile);
        // Pure Z move: Z limits only.
        var z = k.Move(new Vec3(0, 0, 10), new Vec3(0, 0, 0), null);
        Assert.Equal(profile.MaxRateMmPerMin.Z / 60, z.CruiseMmPerS, 9);
        Assert.Equal(profile.AccelerationMmPerS2.Z, z.AccelMmPerS2, 9);
        // Requested feed below the limit wins.
        var slow = k.Move(Vec3.Zero, new Vec3(10, 0, 0), 60);
        Assert.Equal(1, slow.CruiseMmPerS, 9);
    }

    [Fact]
    public void Step_grid_quantises_to_whole_steps()
    {
        var grid = new StepGrid(new AxisValues(80, 80, 400));
        var q = grid.Quantise(new Vec3(10.0061, 0.0, 3.00126));
        Assert.Equal(10.0, q.X, 12);
        Assert.Equal(3.0025, q.Z, 12);
        Assert.Equal((800L, 0L, 1201L), grid.ToSteps(q));
        Assert.Equal("3.0025", StepGrid.Format(q.Z));
    }
}
