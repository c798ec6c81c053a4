using System.Globalization;
using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Mesh;

/// <summary>What <see cref="MeshCheck.Check"/> found wrong with a head mesh; each names its rule as design violations do.</summary>
/// <param name="Rule">Stable rule name: "mesh-not-manifold", "mesh-orientation", "mesh-flipped-normals", "mesh-hole", "mesh-degenerate", "mesh-size".</param>
/// <param name="Message">The operator's words, with counts and where.</param>
public sealed record MeshProblem(string Rule, string Message);

/// <summary>
/// Checks a head mesh before anything is sampled on it: a manifold surface (no edge shared by more than
/// two triangles), consistently oriented (neighbours traverse their shared edge in opposite directions),
/// normals pointing out of the head, no holes where dots will go (a scan may be open elsewhere: only
/// the scalp), and a head-sized object.
/// </summary>
public static class MeshCheck
{
    /// <summary>Smallest and largest extent of a head along its left-right and front-back axes, mm.</summary>
    public const double MinHeadExtentMm = 100, MaxHeadExtentMm = 300;

    /// <summary>
    /// Checks <paramref name="mesh"/>. <paramref name="center"/> is a point inside the head (normals must point
    /// away from it); <paramref name="inTreatedArea"/> says whether a surface point is where dots may go (holes
    /// and flipped faces count only there; null: everywhere).
    /// </summary>
    public static IReadOnlyList<MeshProblem> Check(TriangleMesh mesh, Vec3 center, Func<Vec3, bool>? inTreatedArea = null)
    {
        ArgumentNullException.ThrowIfNull(mesh);
        var problems = new List<MeshProblem>();
        var inv = CultureInfo.InvariantCulture;
        var extent = mesh.Max - mesh.Min;
        if (extent.X < MinHeadExtentMm || extent.X > MaxHeadExtentMm || extent.Y < MinHeadExtentMm || extent.Y > MaxHeadExtentMm)
        {
            problems.Add(new MeshProblem("mesh-size", string.Create(inv,
                $"the mesh is {extent.X:0} x {extent.Y:0} x {extent.Z:0} mm (left-right x front-back x height); a head is {MinHeadExtentMm:0}-{MaxHeadExtentMm:0} mm across: is it in millimetres, in the scalp frame (x right, y front, z up)?")));
        }

        // Half-edges: key (from, to) -> count; an undirected edge is used by at most two faces, once each way.
        var directed = new Dictionary<(int, int), int>(mesh.FaceCount * 3);
        var indices = mesh.Indices;
        var degenerate = 0;
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            if (mesh.FaceArea(f) <= 1e-12) degenerate++;
            for (var k = 0; k < 3; k++)
            {
                var a = indices[(3 * f) + k];
                var b = indices[(3 * f) + ((k + 1) % 3)];
                directed[(a, b)] = directed.GetValueOrDefault((a, b)) + 1;
            }
        }
        int nonManifold = 0, misoriented = 0;
        var boundary = new List<(int A, int B)>();
        foreach (var ((a, b), count) in directed)
        {
            var reverse = directed.GetValueOrDefault((b, a));
            // Each undirected edge once: from its smaller end, or from whichever way exists.
            var first = a < b || reverse == 0;
            if (first && count + reverse > 2) nonManifold++;
            if (count > 1) misoriented++;
            if (count == 1 && reverse == 0) boundary.Add((a, b));
        }
        if (nonManifold > 0) problems.Add(new MeshProblem("mesh-not-manifold", string.Create(inv, $"{nonManifold} edge(s) are shared by more than two triangles: the mesh is not a manifold surface")));
        if (misoriented > 0) problems.Add(new MeshProblem("mesh-orientation", string.Create(inv, $"{misoriented} edge(s) join triangles wound the same way: the mesh's faces are not consistently oriented (some normals are flipped)")));
        if (degenerate > 0) problems.Add(new MeshProblem("mesh-degenerate", string.Create(inv, $"{degenerate} triangle(s) have no area")));

        var holeEdges = boundary.Count(e => inTreatedArea is null || inTreatedArea((mesh.Vertices[e.A] + mesh.Vertices[e.B]) * 0.5));
        if (holeEdges > 0)
        {
            problems.Add(new MeshProblem("mesh-hole", inTreatedArea is null
                ? string.Create(inv, $"the mesh is open: {holeEdges} boundary edge(s)")
                : string.Create(inv, $"the mesh has a hole where dots go: {holeEdges} boundary edge(s) inside the treated area")));
        }

        // Outward normals: a face whose normal points towards the head's inside is flipped.
        int inward = 0, looked = 0;
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            var (a, b, c) = mesh.Corners(f);
            var centroid = (a + b + c) * (1.0 / 3);
            if (inTreatedArea is not null && !inTreatedArea(centroid)) continue;
            looked++;
            if (Vec3.Dot(mesh.FaceNormal(f), centroid - center) < 0) inward++;
        }
        if (looked > 0 && inward > 0)
        {
            problems.Add(new MeshProblem("mesh-flipped-normals", inward * 2 > looked
                ? string.Create(inv, $"{inward} of {looked} triangle(s) face into the head: the mesh is inside out (reverse the winding of every face)")
                : string.Create(inv, $"{inward} of {looked} triangle(s) face into the head (flipped normals)")));
        }
        return problems;
    }
}
