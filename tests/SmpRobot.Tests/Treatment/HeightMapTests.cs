using SmpRobot.Geometry;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Tests.Treatment;

/// <summary>The probed height map of a plan without a head model: its grid, its interpolated heights and normals, and its bounds.</summary>
public class HeightMapTests
{
    [Fact]
    public void The_grid_covers_the_points_with_a_margin_and_about_the_nodes_asked_for_spaced_alike()
    {
        var points = new List<Vec3> { new(-10, -5, 0), new(10, 5, 0), new(0, 0, 0) };

        var grid = HeightMap.Over(points, 16, 1);

        Assert.Equal((-11, -6, 11, 6), (grid.MinXMm, grid.MinYMm, grid.MaxXMm, grid.MaxYMm));
        Assert.InRange(grid.Columns * grid.Rows, 12, 20);
        Assert.True(grid.Columns > grid.Rows, $"{grid.Columns} × {grid.Rows} for a 22 × 12 mm area");
        Assert.InRange(grid.StepXMm / grid.StepYMm, 0.6, 1.6);
        Assert.All(points, p => Assert.True(grid.Covers(p.X, p.Y)));
    }

    [Fact]
    public void A_sloping_plane_is_reproduced_exactly_with_its_normal_and_the_stored_map_reads_back_the_same()
    {
        // z = 0.2 x − 0.1 y + 3: a plane is reproduced exactly, between and on the nodes.
        var grid = HeightMap.Over([new Vec3(0, 0, 0), new Vec3(12, 9, 0)], 12, 0);
        var heights = new List<double>();
        for (var row = 0; row < grid.Rows; row++)
        {
            for (var column = 0; column < grid.Columns; column++)
            {
                var (x, y) = grid.Node(column, row);
                heights.Add((0.2 * x) - (0.1 * y) + 3);
            }
        }

        var map = HeightMap.FromJson(grid.WithHeights(heights).ToJson());

        foreach (var (x, y) in new[] { (0.0, 0.0), (12.0, 9.0), (3.7, 5.1), (11.2, 0.4) })
        {
            Assert.Equal((0.2 * x) - (0.1 * y) + 3, map.ZAt(x, y), 9);
            var n = map.NormalAt(x, y);
            var expected = new Vec3(-0.2, 0.1, 1).Normalized();
            Assert.True(n.DistanceTo(expected) < 1e-9, $"normal {n} at ({x}, {y}), expected {expected}");
        }
    }

    [Fact]
    public void A_domed_scalp_is_followed_between_the_nodes_and_in_the_edge_cells_not_cut_along_the_chords()
    {
        // The top of a 90 mm sphere over 40 × 30 mm, nodes at most 5 mm apart: straight lines between the nodes would lie
        // up to h²/8R = 0.035 mm inside it per axis, and more in the edge cells; the map follows it within 5 µm.
        const double R = 90;
        double Sphere(double x, double y) => Math.Sqrt((R * R) - (x * x) - (y * y)) - R;
        var grid = HeightMap.Over([new Vec3(-20, -15, 0), new Vec3(20, 15, 0)], 16, 0, maxCellMm: 5, maxNodes: 100);
        Assert.True(grid.StepXMm <= 5 && grid.StepYMm <= 5, $"{grid.StepXMm} × {grid.StepYMm} mm cells");
        var heights = new List<double>();
        for (var row = 0; row < grid.Rows; row++)
        {
            for (var column = 0; column < grid.Columns; column++)
            {
                var (x, y) = grid.Node(column, row);
                heights.Add(Sphere(x, y));
            }
        }
        var map = grid.WithHeights(heights);

        var worst = 0.0;
        for (var x = -20.0; x <= 20; x += 0.37)
        {
            for (var y = -15.0; y <= 15; y += 0.41) worst = Math.Max(worst, Math.Abs(map.ZAt(x, y) - Sphere(x, y)));
        }
        Assert.True(worst < 0.005, $"the map misses the dome by {worst:0.0000} mm");
        // Too large an area for the nodes allowed is refused, naming what to do.
        var e = Assert.Throws<ArgumentException>(() => HeightMap.Over([new Vec3(-40, -40, 0), new Vec3(40, 40, 0)], 16, 0, maxCellMm: 5, maxNodes: 64));
        Assert.Contains("split the head position", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_height_outside_the_probed_grid_is_never_guessed_and_bad_grids_are_refused()
    {
        var map = HeightMap.Over([new Vec3(0, 0, 0), new Vec3(4, 4, 0)], 4, 0).WithHeights([0, 0, 0, 0]);

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => map.ZAt(4.5, 2));
        Assert.Contains("outside the probed height map", e.Message, StringComparison.Ordinal);
        Assert.False(map.Covers(-0.01, 2));
        Assert.Throws<ArgumentException>(() => new HeightMap(0, 0, 1, 1, 1, 4, [0, 0, 0, 0]));
        Assert.Throws<ArgumentException>(() => new HeightMap(0, 0, 1, 1, 2, 2, [0, 0, 0]));
        Assert.Throws<ArgumentException>(() => new HeightMap(0, 0, 1, 1, 2, 2, [0, 0, double.NaN, 0]));
        Assert.Throws<ArgumentException>(() => new HeightMap(0, 0, 0, 1, 2, 2, [0, 0, 0, 0]));
    }
}
