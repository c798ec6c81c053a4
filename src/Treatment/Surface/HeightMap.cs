using System.Globalization;
using System.Text.Json;
using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Surface;

/// <summary>
/// The skin's height over a rectangular grid in the head frame H, probed node by node, as CNC auto-levelling does
/// where no model of the surface exists: bicubic between the nodes (Catmull–Rom, with the edges continued as
/// parabolas through the last three nodes, so a curved scalp is followed between and at the edge nodes: straight
/// lines between nodes would lie on the chords, inside a domed scalp, and send every dot too deep), never beyond them.
/// Heights in mm, along H's Z. Written by hand: a dozen lines of a textbook spline, on a grid of a few dozen nodes.
/// </summary>
public sealed class HeightMap
{
    private readonly double[] _z;

    /// <summary>A grid of <paramref name="columns"/> × <paramref name="rows"/> nodes from (<paramref name="minXMm"/>, <paramref name="minYMm"/>), row by row (X fastest).</summary>
    public HeightMap(double minXMm, double minYMm, double stepXMm, double stepYMm, int columns, int rows, IReadOnlyList<double> zMm)
    {
        ArgumentNullException.ThrowIfNull(zMm);
        if (columns < 2 || rows < 2) throw new ArgumentException("a height map needs at least 2 × 2 nodes");
        if (!(stepXMm > 0) || !(stepYMm > 0)) throw new ArgumentException("a height map's node spacing must be > 0");
        if (zMm.Count != columns * rows) throw new ArgumentException($"a {columns} × {rows} height map needs {columns * rows} heights, not {zMm.Count}");
        if (zMm.Any(z => !double.IsFinite(z))) throw new ArgumentException("every height of a height map must be finite");
        (MinXMm, MinYMm, StepXMm, StepYMm, Columns, Rows) = (minXMm, minYMm, stepXMm, stepYMm, columns, rows);
        _z = [.. zMm];
    }

    public double MinXMm { get; }
    public double MinYMm { get; }
    public double StepXMm { get; }
    public double StepYMm { get; }
    public int Columns { get; }
    public int Rows { get; }

    /// <summary>The largest X and Y the map covers, mm.</summary>
    public double MaxXMm => MinXMm + (StepXMm * (Columns - 1));

    /// <inheritdoc cref="MaxXMm"/>
    public double MaxYMm => MinYMm + (StepYMm * (Rows - 1));

    /// <summary>The node heights, row by row.</summary>
    public IReadOnlyList<double> Heights => _z;

    /// <summary>Node (<paramref name="column"/>, <paramref name="row"/>)'s X and Y in H.</summary>
    public (double XMm, double YMm) Node(int column, int row) => (MinXMm + (column * StepXMm), MinYMm + (row * StepYMm));

    /// <summary>True when (<paramref name="xMm"/>, <paramref name="yMm"/>) lies within the probed grid (a micrometre of slack).</summary>
    public bool Covers(double xMm, double yMm) =>
        xMm >= MinXMm - 1e-3 && xMm <= MaxXMm + 1e-3 && yMm >= MinYMm - 1e-3 && yMm <= MaxYMm + 1e-3;

    /// <summary>The skin height at a point within the grid (Catmull–Rom between its nodes; planes are reproduced exactly).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The point lies outside the probed grid: a height there was never measured.</exception>
    public double ZAt(double xMm, double yMm)
    {
        var (i, j, u, v) = Cell(xMm, yMm);
        Span<double> across = stackalloc double[4];
        for (var k = -1; k <= 2; k++)
        {
            across[k + 1] = CatmullRom(Z(i - 1, j + k), Z(i, j + k), Z(i + 1, j + k), Z(i + 2, j + k), u);
        }
        return CatmullRom(across[0], across[1], across[2], across[3], v);
    }

    /// <summary>The skin's outward unit normal at a point within the grid, from the interpolated surface's slope.</summary>
    public Vec3 NormalAt(double xMm, double yMm)
    {
        const double H = 0.01;
        double Slope(double a, double b, Func<double, double> z) => (z(b) - z(a)) / (b - a);
        var dzdx = Slope(Math.Max(MinXMm, xMm - H), Math.Min(MaxXMm, xMm + H), x => ZAt(x, yMm));
        var dzdy = Slope(Math.Max(MinYMm, yMm - H), Math.Min(MaxYMm, yMm + H), y => ZAt(xMm, y));
        return new Vec3(-dzdx, -dzdy, 1).Normalized();
    }

    /// <summary>The Catmull–Rom spline through p1 (t = 0) and p2 (t = 1), shaped by p0 and p3.</summary>
    private static double CatmullRom(double p0, double p1, double p2, double p3, double t) =>
        0.5 * ((2 * p1) + ((p2 - p0) * t) + (((2 * p0) - (5 * p1) + (4 * p2) - p3) * t * t) + (((3 * p1) - p0 - (3 * p2) + p3) * t * t * t));

    /// <summary>
    /// A node's height; one node beyond the grid's edge, continued as the parabola through the last three nodes (a
    /// straight line with only two), so the edge cells keep the scalp's curvature and planes stay planes.
    /// </summary>
    private double Z(int column, int row)
    {
        if (column < 0) return Columns >= 3 ? (3 * Z(0, row)) - (3 * Z(1, row)) + Z(2, row) : (2 * Z(0, row)) - Z(1, row);
        if (column >= Columns) return Columns >= 3 ? (3 * Z(Columns - 1, row)) - (3 * Z(Columns - 2, row)) + Z(Columns - 3, row) : (2 * Z(Columns - 1, row)) - Z(Columns - 2, row);
        if (row < 0) return Rows >= 3 ? (3 * Z(column, 0)) - (3 * Z(column, 1)) + Z(column, 2) : (2 * Z(column, 0)) - Z(column, 1);
        if (row >= Rows) return Rows >= 3 ? (3 * Z(column, Rows - 1)) - (3 * Z(column, Rows - 2)) + Z(column, Rows - 3) : (2 * Z(column, Rows - 1)) - Z(column, Rows - 2);
        return _z[(row * Columns) + column];
    }

    private (int I, int J, double U, double V) Cell(double xMm, double yMm)
    {
        if (!Covers(xMm, yMm))
        {
            throw new ArgumentOutOfRangeException(nameof(xMm), string.Create(CultureInfo.InvariantCulture,
                $"({xMm:0.###}, {yMm:0.###}) mm lies outside the probed height map (x {MinXMm:0.###}..{MaxXMm:0.###}, y {MinYMm:0.###}..{MaxYMm:0.###})"));
        }
        var fx = Math.Clamp((xMm - MinXMm) / StepXMm, 0, Columns - 1);
        var fy = Math.Clamp((yMm - MinYMm) / StepYMm, 0, Rows - 1);
        var i = Math.Min((int)Math.Floor(fx), Columns - 2);
        var j = Math.Min((int)Math.Floor(fy), Rows - 2);
        return (i, j, fx - i, fy - j);
    }

    /// <summary>
    /// The grid over <paramref name="pointsH"/> (their X and Y, grown by <paramref name="marginMm"/> on every side) with
    /// about <paramref name="nodes"/> nodes, spaced alike in X and Y, and more where needed so no cell is wider than
    /// <paramref name="maxCellMm"/>; its heights still unknown (zero).
    /// </summary>
    /// <exception cref="ArgumentException">The area needs more than <paramref name="maxNodes"/> nodes at that spacing.</exception>
    public static HeightMap Over(IReadOnlyList<Vec3> pointsH, int nodes, double marginMm, double maxCellMm = double.PositiveInfinity, int maxNodes = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(pointsH);
        if (pointsH.Count == 0) throw new ArgumentException("a height map needs points to cover", nameof(pointsH));
        if (nodes < 4) throw new ArgumentOutOfRangeException(nameof(nodes), "a height map needs at least 4 nodes");
        var minX = pointsH.Min(p => p.X) - marginMm;
        var maxX = pointsH.Max(p => p.X) + marginMm;
        var minY = pointsH.Min(p => p.Y) - marginMm;
        var maxY = pointsH.Max(p => p.Y) + marginMm;
        var width = Math.Max(maxX - minX, 0.5);
        var height = Math.Max(maxY - minY, 0.5);
        // Columns : rows as width : height, columns · rows ≈ nodes; then at least enough for the widest cell allowed.
        var columns = Math.Clamp((int)Math.Round(Math.Sqrt(nodes * width / height)), 2, Math.Max(2, nodes / 2));
        var rows = Math.Max(2, nodes / columns);
        if (double.IsFinite(maxCellMm))
        {
            columns = Math.Max(columns, (int)Math.Ceiling(width / maxCellMm) + 1);
            rows = Math.Max(rows, (int)Math.Ceiling(height / maxCellMm) + 1);
        }
        if (columns * rows > maxNodes)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"a height map over {width:0.#} × {height:0.#} mm needs {columns} × {rows} nodes at most {maxCellMm:0.#} mm apart, more than the {maxNodes} probed at most: split the head position"));
        }
        return new HeightMap(minX, minY, width / (columns - 1), height / (rows - 1), columns, rows, new double[columns * rows]);
    }

    /// <summary>The same grid with these node heights.</summary>
    public HeightMap WithHeights(IReadOnlyList<double> zMm) => new(MinXMm, MinYMm, StepXMm, StepYMm, Columns, Rows, zMm);

    /// <summary>As stored with the registration.</summary>
    public string ToJson() => JsonSerializer.Serialize(new Stored(MinXMm, MinYMm, StepXMm, StepYMm, Columns, Rows, _z));

    /// <summary>The map <see cref="ToJson"/> wrote.</summary>
    public static HeightMap FromJson(string json)
    {
        var s = JsonSerializer.Deserialize<Stored>(json) ?? throw new JsonException("empty height map");
        return new HeightMap(s.MinXMm, s.MinYMm, s.StepXMm, s.StepYMm, s.Columns, s.Rows, s.ZMm);
    }

    private sealed record Stored(double MinXMm, double MinYMm, double StepXMm, double StepYMm, int Columns, int Rows, double[] ZMm);
}
