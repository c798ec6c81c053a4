namespace SmpRobot.Geometry;

/// <summary>
/// A rigid transform T_AB (rotation + translation) that maps points given in frame B into frame A:
/// p_A = R · p_B + t. Compose with <see cref="op_Multiply(RigidTransform, RigidTransform)"/>:
/// T_GH = T_GC * T_CH.
/// </summary>
public readonly record struct RigidTransform
{
    private readonly double _r00, _r01, _r02, _r10, _r11, _r12, _r20, _r21, _r22;

    /// <summary>Translation part, mm.</summary>
    public Vec3 Translation { get; }

    public static readonly RigidTransform Identity = new(1, 0, 0, 0, 1, 0, 0, 0, 1, Vec3.Zero);

    /// <summary>Row-major rotation matrix and translation. The caller guarantees R is a rotation.</summary>
    public RigidTransform(double r00, double r01, double r02, double r10, double r11, double r12, double r20, double r21, double r22, Vec3 translation)
    {
        (_r00, _r01, _r02, _r10, _r11, _r12, _r20, _r21, _r22) = (r00, r01, r02, r10, r11, r12, r20, r21, r22);
        Translation = translation;
    }

    /// <summary>Rotation about Z by <paramref name="yawDeg"/> degrees, then translation.</summary>
    public static RigidTransform FromYawDegrees(double yawDeg, Vec3 translation)
    {
        var a = yawDeg * Math.PI / 180.0;
        var (s, c) = Math.SinCos(a);
        return new RigidTransform(c, -s, 0, s, c, 0, 0, 0, 1, translation);
    }

    /// <summary>Maps a point of frame B into frame A.</summary>
    public Vec3 Apply(Vec3 p) => new(
        (_r00 * p.X) + (_r01 * p.Y) + (_r02 * p.Z) + Translation.X,
        (_r10 * p.X) + (_r11 * p.Y) + (_r12 * p.Z) + Translation.Y,
        (_r20 * p.X) + (_r21 * p.Y) + (_r22 * p.Z) + Translation.Z);

    /// <summary>T_AC = T_AB * T_BC.</summary>
    public static RigidTransform operator *(RigidTransform ab, RigidTransform bc)
    {
        var t = ab.Apply(bc.Translation);
        return new RigidTransform(
            (ab._r00 * bc._r00) + (ab._r01 * bc._r10) + (ab._r02 * bc._r20),
            (ab._r00 * bc._r01) + (ab._r01 * bc._r11) + (ab._r02 * bc._r21),
            (ab._r00 * bc._r02) + (ab._r01 * bc._r12) + (ab._r02 * bc._r22),
            (ab._r10 * bc._r00) + (ab._r11 * bc._r10) + (ab._r12 * bc._r20),
            (ab._r10 * bc._r01) + (ab._r11 * bc._r11) + (ab._r12 * bc._r21),
            (ab._r10 * bc._r02) + (ab._r11 * bc._r12) + (ab._r12 * bc._r22),
            (ab._r20 * bc._r00) + (ab._r21 * bc._r10) + (ab._r22 * bc._r20),
            (ab._r20 * bc._r01) + (ab._r21 * bc._r11) + (ab._r22 * bc._r21),
            (ab._r20 * bc._r02) + (ab._r21 * bc._r12) + (ab._r22 * bc._r22),
            t);
    }
}
