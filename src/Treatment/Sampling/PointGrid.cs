using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Sampling;

/// <summary>
/// A uniform hash grid over a fixed set of points. <see cref="Near(Vec3, List{int})"/> gives the indices of every
/// point in the 27 cells around a query (every point within one cell size, and some farther);
/// <see cref="Within"/> reaches as many cells as a radius needs. Points are stored sorted by cell, so a cell is
/// one contiguous range.
/// </summary>
internal sealed class PointGrid
{
    private readonly double _cellMm;
    private readonly int[] _order;
    private readonly Dictionary<(int, int, int), (int Start, int Count)> _cells = [];

    public PointGrid(IReadOnlyList<Vec3> points, double cellMm)
    {
        _cellMm = Math.Max(cellMm, 1e-6);
        var keys = new (int, int, int)[points.Count];
        for (var i = 0; i < points.Count; i++) keys[i] = Cell(points[i]);
        _order = Enumerable.Range(0, points.Count).OrderBy(i => keys[i]).ToArray();
        for (var n = 0; n < _order.Length;)
        {
            var key = keys[_order[n]];
            var start = n;
            while (n < _order.Length && keys[_order[n]] == key) n++;
            _cells[key] = (start, n - start);
        }
    }

    /// <summary>The grid's cell size, mm.</summary>
    public double CellMm => _cellMm;

    private (int, int, int) Cell(Vec3 p) => ((int)Math.Floor(p.X / _cellMm), (int)Math.Floor(p.Y / _cellMm), (int)Math.Floor(p.Z / _cellMm));

    /// <summary>Indices of the points in the cells around <paramref name="p"/> (lazily; see <see cref="Near(Vec3, List{int})"/> for hot loops).</summary>
    public IEnumerable<int> Near(Vec3 p)
    {
        var found = new List<int>();
        Near(p, found);
        return found;
    }

    /// <summary>Replaces the contents of <paramref name="found"/> with the indices of the points in the 27 cells around <paramref name="p"/>.</summary>
    public void Near(Vec3 p, List<int> found) => Within(p, _cellMm, found);

    /// <summary>Replaces the contents of <paramref name="found"/> with the indices of the points in every cell that may hold a point within <paramref name="radiusMm"/> of <paramref name="p"/>.</summary>
    public void Within(Vec3 p, double radiusMm, List<int> found)
    {
        found.Clear();
        var reach = Math.Max(1, (int)Math.Ceiling(radiusMm / _cellMm));
        var (cx, cy, cz) = Cell(p);
        for (var x = cx - reach; x <= cx + reach; x++)
        {
            for (var y = cy - reach; y <= cy + reach; y++)
            {
                for (var z = cz - reach; z <= cz + reach; z++)
                {
                    if (!_cells.TryGetValue((x, y, z), out var range)) continue;
                    for (var n = range.Start; n < range.Start + range.Count; n++) found.Add(_order[n]);
                }
            }
        }
    }
}
