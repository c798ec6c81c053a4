using SmpRobot.Geometry;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;

namespace SmpRobot.Treatment.Surface;

/// <summary>A point of the scalp map, mm: <see cref="X"/> towards the person's right, <see cref="Y"/> towards the front.</summary>
public readonly record struct MapPoint(double X, double Y)
{
    /// <summary>Distance on the map, mm.</summary>
    public double DistanceTo(MapPoint other) => Math.Sqrt(((X - other.X) * (X - other.X)) + ((Y - other.Y) * (Y - other.Y)));
}

/// <summary>
/// The scalp map: an azimuthal equidistant map of the head around the vertex, seen from above. A point's
/// direction from the head's centre is taken apart into its angle from the vertex direction (its distance
/// from the map's centre, as an arc of <see cref="ReferenceRadiusMm"/>) and its azimuth (0 at the front,
/// 90° at the person's right). The whole scalp down to the ears and the nape maps without a seam or a
/// fold (only the point straight below the centre is singular), so zones and the hairline are closed or
/// open polygons on it and "inside a zone" is a plain point-in-polygon test. Lengths on the map are true
/// along meridians and stretched across them (by angle / sin(angle)); distances that matter — spacing,
/// margins, the hairline band — are measured in 3-D on the mesh instead.
/// </summary>
public sealed class ScalpMap
{
    /// <summary>Map millimetres per radian from the vertex direction (a typical head radius).</summary>
    public const double ReferenceRadiusMm = 100;

    private readonly TriangleMesh _mesh;

    /// <summary>Builds the map of <paramref name="mesh"/> from its landmarks: centre, vertex (up) and glabella (front).</summary>
    public ScalpMap(TriangleMesh mesh, HeadLandmarks landmarks)
    {
        ArgumentNullException.ThrowIfNull(mesh);
        ArgumentNullException.ThrowIfNull(landmarks);
        _mesh = mesh;
        Center = landmarks.Center;
        Up = (landmarks.Vertex - Center).Normalized();
        var front = landmarks.Glabella - Center;
        Front = (front - (Up * Vec3.Dot(front, Up))).Normalized();
        Right = Vec3.Cross(Front, Up);
    }

    /// <summary>The head's centre (map origin's direction source).</summary>
    public Vec3 Center { get; }

    /// <summary>Unit directions of the head: up (to the vertex), front (to the face), right (the person's right).</summary>
    public Vec3 Up { get; }

    /// <summary>To the face, perpendicular to <see cref="Up"/>.</summary>
    public Vec3 Front { get; }

    /// <summary>To the person's right.</summary>
    public Vec3 Right { get; }

    /// <summary>The map point of a point of (or near) the surface.</summary>
    public MapPoint ToMap(Vec3 p)
    {
        var d = (p - Center).Normalized();
        var polar = Math.Acos(Math.Clamp(Vec3.Dot(d, Up), -1, 1));
        var azimuth = Math.Atan2(Vec3.Dot(d, Right), Vec3.Dot(d, Front));
        var r = polar * ReferenceRadiusMm;
        return new MapPoint(r * Math.Sin(azimuth), r * Math.Cos(azimuth));
    }

    /// <summary>The unit direction from the centre that map point <paramref name="m"/> stands for.</summary>
    public Vec3 Direction(MapPoint m)
    {
        var r = Math.Sqrt((m.X * m.X) + (m.Y * m.Y));
        var polar = r / ReferenceRadiusMm;
        var (sinPolar, cosPolar) = Math.SinCos(polar);
        if (r < 1e-12) return Up;
        var horizontal = ((Right * (m.X / r)) + (Front * (m.Y / r))) * sinPolar;
        return ((Up * cosPolar) + horizontal).Normalized();
    }

    /// <summary>The surface point that map point <paramref name="m"/> stands for (the first surface met going out from the centre), or null.</summary>
    public SurfaceHit? ToSurface(MapPoint m) => _mesh.Raycast(Center, Direction(m));
}
