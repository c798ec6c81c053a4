using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Mesh;

/// <summary>
/// A uniform grid over a mesh's bounding box; each cell lists the triangles whose bounding boxes
/// overlap it. Closest-point queries look at cells in growing shells; ray casts walk the cells along
/// the ray (Amanatides and Woo) and stop at the first cell whose exit lies beyond the best hit.
/// </summary>
internal sealed class TriangleGrid
{
    private readonly TriangleMesh _mesh;
    private readonly Vec3 _origin;
    private readonly double _cellMm;
    private readonly int _nx, _ny, _nz;
    private readonly int[] _cellStart;
    private readonly int[] _cellFaces;

    public TriangleGrid(TriangleMesh mesh)
    {
        _mesh = mesh;
        // Cells of about two mean edge lengths keep a handful of triangles each.
        var meanEdge = Math.Sqrt(4 * mesh.TotalAreaMm2 / Math.Sqrt(3) / Math.Max(1, mesh.FaceCount));
        var extent = mesh.Max - mesh.Min;
        var largest = Math.Max(extent.X, Math.Max(extent.Y, extent.Z));
        // At most 128 cells along an axis: bounded memory whatever the mesh.
        _cellMm = Math.Max(Math.Max(2 * meanEdge, largest / 128), 1e-6);
        _origin = mesh.Min - new Vec3(_cellMm * 0.5, _cellMm * 0.5, _cellMm * 0.5);
        _nx = (int)Math.Ceiling((extent.X + _cellMm) / _cellMm) + 1;
        _ny = (int)Math.Ceiling((extent.Y + _cellMm) / _cellMm) + 1;
        _nz = (int)Math.Ceiling((extent.Z + _cellMm) / _cellMm) + 1;
        var counts = new int[(_nx * _ny * _nz) + 1];
        ForEachCellOfEachFace((_, cell) => counts[cell + 1]++);
        for (var i = 1; i < counts.Length; i++) counts[i] += counts[i - 1];
        _cellStart = counts;
        _cellFaces = new int[counts[^1]];
        var fill = (int[])counts.Clone();
        ForEachCellOfEachFace((face, cell) => _cellFaces[fill[cell]++] = face);
    }

    private void ForEachCellOfEachFace(Action<int, int> visit)
    {
        for (var f = 0; f < _mesh.FaceCount; f++)
        {
            var (a, b, c) = _mesh.Corners(f);
            var (x0, y0, z0) = Cell(new Vec3(Math.Min(a.X, Math.Min(b.X, c.X)), Math.Min(a.Y, Math.Min(b.Y, c.Y)), Math.Min(a.Z, Math.Min(b.Z, c.Z))));
            var (x1, y1, z1) = Cell(new Vec3(Math.Max(a.X, Math.Max(b.X, c.X)), Math.Max(a.Y, Math.Max(b.Y, c.Y)), Math.Max(a.Z, Math.Max(b.Z, c.Z))));
            for (var z = z0; z <= z1; z++)
            {
                for (var y = y0; y <= y1; y++)
                {
                    for (var x = x0; x <= x1; x++) visit(f, Index(x, y, z));
                }
            }
        }
    }

    private (int X, int Y, int Z) Cell(Vec3 p) => (
        Math.Clamp((int)Math.Floor((p.X - _origin.X) / _cellMm), 0, _nx - 1),
        Math.Clamp((int)Math.Floor((p.Y - _origin.Y) / _cellMm), 0, _ny - 1),
        Math.Clamp((int)Math.Floor((p.Z - _origin.Z) / _cellMm), 0, _nz - 1));

    private int Index(int x, int y, int z) => x + (_nx * (y + (_ny * z)));

    public SurfaceHit? Closest(Vec3 p, double maxDistanceMm)
    {
        if (!p.IsFinite || !(maxDistanceMm >= 0)) return null;
        var (cx, cy, cz) = Cell(p);
        SurfaceHit? best = null;
        var bestDistance = maxDistanceMm;
        var maxRing = (int)Math.Ceiling(maxDistanceMm / _cellMm) + 1;
        maxRing = Math.Min(maxRing, Math.Max(_nx, Math.Max(_ny, _nz)));
        for (var ring = 0; ring <= maxRing; ring++)
        {
            // Every point of a cell in ring r is at least (r - 1) cells away from p.
            if (best is not null && (ring - 1) * _cellMm > bestDistance) break;
            for (var z = cz - ring; z <= cz + ring; z++)
            {
                if (z < 0 || z >= _nz) continue;
                for (var y = cy - ring; y <= cy + ring; y++)
                {
                    if (y < 0 || y >= _ny) continue;
                    for (var x = cx - ring; x <= cx + ring; x++)
                    {
                        if (x < 0 || x >= _nx) continue;
                        // Only the shell of this ring: the inside was visited before.
                        if (Math.Abs(x - cx) != ring && Math.Abs(y - cy) != ring && Math.Abs(z - cz) != ring) continue;
                        var cell = Index(x, y, z);
                        for (var i = _cellStart[cell]; i < _cellStart[cell + 1]; i++)
                        {
                            var face = _cellFaces[i];
                            var (a, b, c) = _mesh.Corners(face);
                            var (q, u, v) = TriangleMesh.ClosestOnTriangle(p, a, b, c);
                            var d = q.DistanceTo(p);
                            if (d <= bestDistance && (best is null || d < best.Value.DistanceMm))
                            {
                                best = new SurfaceHit(q, face, u, v, d);
                                bestDistance = d;
                            }
                        }
                    }
                }
            }
        }
        return best;
    }

    public SurfaceHit? Raycast(Vec3 origin, Vec3 direction)
    {
        if (!origin.IsFinite || direction == Vec3.Zero) return null;
        // Clip the ray to the grid's box.
        var boxMin = _origin;
        var boxMax = _origin + new Vec3(_nx * _cellMm, _ny * _cellMm, _nz * _cellMm);
        double tEnter = 0, tExit = double.MaxValue;
        for (var axis = 0; axis < 3; axis++)
        {
            var o = Component(origin, axis);
            var d = Component(direction, axis);
            var lo = Component(boxMin, axis);
            var hi = Component(boxMax, axis);
            if (Math.Abs(d) < 1e-15)
            {
                if (o < lo || o > hi) return null;
                continue;
            }
            var t0 = (lo - o) / d;
            var t1 = (hi - o) / d;
            if (t0 > t1) (t0, t1) = (t1, t0);
            tEnter = Math.Max(tEnter, t0);
            tExit = Math.Min(tExit, t1);
        }
        if (tEnter > tExit) return null;
        var start = origin + (direction * tEnter);
        var (x, y, z) = Cell(start);
        int stepX = Math.Sign(direction.X), stepY = Math.Sign(direction.Y), stepZ = Math.Sign(direction.Z);
        double NextBoundary(int cell, int step, double o, double d, double gridOrigin)
        {
            if (step == 0) return double.MaxValue;
            var boundary = gridOrigin + ((cell + (step > 0 ? 1 : 0)) * _cellMm);
            return (boundary - o) / d;
        }
        var tMaxX = NextBoundary(x, stepX, origin.X, direction.X, _origin.X);
        var tMaxY = NextBoundary(y, stepY, origin.Y, direction.Y, _origin.Y);
        var tMaxZ = NextBoundary(z, stepZ, origin.Z, direction.Z, _origin.Z);
        var tDeltaX = stepX == 0 ? double.MaxValue : _cellMm / Math.Abs(direction.X);
        var tDeltaY = stepY == 0 ? double.MaxValue : _cellMm / Math.Abs(direction.Y);
        var tDeltaZ = stepZ == 0 ? double.MaxValue : _cellMm / Math.Abs(direction.Z);
        SurfaceHit? best = null;
        while (x >= 0 && x < _nx && y >= 0 && y < _ny && z >= 0 && z < _nz)
        {
            var cell = Index(x, y, z);
            for (var i = _cellStart[cell]; i < _cellStart[cell + 1]; i++)
            {
                var face = _cellFaces[i];
                var (a, b, c) = _mesh.Corners(face);
                if (TriangleMesh.IntersectRay(origin, direction, a, b, c) is { } hit && (best is null || hit.T < best.Value.DistanceMm))
                {
                    best = new SurfaceHit(origin + (direction * hit.T), face, hit.U, hit.V, hit.T);
                }
            }
            var cellExit = Math.Min(tMaxX, Math.Min(tMaxY, tMaxZ));
            if (best is not null && best.Value.DistanceMm <= cellExit) break;
            if (tMaxX <= tMaxY && tMaxX <= tMaxZ)
            {
                x += stepX;
                tMaxX += tDeltaX;
            }
            else if (tMaxY <= tMaxZ)
            {
                y += stepY;
                tMaxY += tDeltaY;
            }
            else
            {
                z += stepZ;
                tMaxZ += tDeltaZ;
            }
        }
        return best;
    }

    private static double Component(Vec3 v, int axis) => axis switch { 0 => v.X, 1 => v.Y, _ => v.Z };
}
