namespace SmpRobot.Geometry;

/// <summary>
/// Small rotation helpers around <see cref="RigidTransform"/>: rotation vectors (axis × angle, rad,
/// the form OpenCV's solvePnP uses) and row-major 3×3 matrices.
/// </summary>
public static class Rotations
{
    /// <summary>Row-major rotation matrix of <paramref name="t"/> (read through Apply, so RigidTransform stays as it is).</summary>
    public static double[] RotationMatrix(RigidTransform t)
    {
        var o = t.Translation;
        var ex = t.Apply(new Vec3(1, 0, 0)) - o;
        var ey = t.Apply(new Vec3(0, 1, 0)) - o;
        var ez = t.Apply(new Vec3(0, 0, 1)) - o;
        return [ex.X, ey.X, ez.X, ex.Y, ey.Y, ez.Y, ex.Z, ey.Z, ez.Z];
    }

    /// <summary>Builds a transform from a row-major rotation matrix and a translation.</summary>
    public static RigidTransform FromMatrix(double[] r, Vec3 translation)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], translation);
    }

    /// <summary>Builds a transform from a rotation vector (rad) and a translation.</summary>
    public static RigidTransform FromRotationVector(Vec3 rotationVectorRad, Vec3 translation) =>
        FromMatrix(MatrixFromVector(rotationVectorRad), translation);

    /// <summary>The inverse transform T_BA of T_AB.</summary>
    public static RigidTransform Inverse(RigidTransform t)
    {
        var r = RotationMatrix(t);
        double[] rt = [r[0], r[3], r[6], r[1], r[4], r[7], r[2], r[5], r[8]];
        var p = t.Translation;
        var ti = new Vec3(
            -((rt[0] * p.X) + (rt[1] * p.Y) + (rt[2] * p.Z)),
            -((rt[3] * p.X) + (rt[4] * p.Y) + (rt[5] * p.Z)),
            -((rt[6] * p.X) + (rt[7] * p.Y) + (rt[8] * p.Z)));
        return FromMatrix(rt, ti);
    }

    /// <summary>Rodrigues: rotation vector (rad) → row-major matrix.</summary>
    public static double[] MatrixFromVector(Vec3 w)
    {
        var angle = w.Length;
        if (angle < 1e-12)
        {
            // First order: I + [w]x, good to 1e-24 here.
            return [1, -w.Z, w.Y, w.Z, 1, -w.X, -w.Y, w.X, 1];
        }
        var (x, y, z) = (w.X / angle, w.Y / angle, w.Z / angle);
        var (s, c) = Math.SinCos(angle);
        var v = 1 - c;
        return
        [
            c + (x * x * v), (x * y * v) - (z * s), (x * z * v) + (y * s),
            (y * x * v) + (z * s), c + (y * y * v), (y * z * v) - (x * s),
            (z * x * v) - (y * s), (z * y * v) + (x * s), c + (z * z * v),
        ];
    }

    /// <summary>Inverse Rodrigues: row-major rotation matrix → rotation vector (rad), angle in [0, π].</summary>
    public static Vec3 VectorFromMatrix(double[] r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var cos = Math.Clamp((r[0] + r[4] + r[8] - 1) / 2, -1, 1);
        var angle = Math.Acos(cos);
        var axis = new Vec3(r[7] - r[5], r[2] - r[6], r[3] - r[1]);
        if (angle < 1e-9) return axis * 0.5;
        if (Math.PI - angle > 1e-6) return axis * (angle / (2 * Math.Sin(angle)));
        // Near π the antisymmetric part vanishes: take the axis from the diagonal.
        var ax = Math.Sqrt(Math.Max(0, (r[0] + 1) / 2));
        var ay = Math.Sqrt(Math.Max(0, (r[4] + 1) / 2)) * (r[1] >= 0 ? 1 : -1);
        var az = Math.Sqrt(Math.Max(0, (r[8] + 1) / 2)) * (r[2] >= 0 ? 1 : -1);
        return new Vec3(ax, ay, az) * angle;
    }

    /// <summary>Row-major product a · b of two 3×3 matrices.</summary>
    public static double[] Multiply(double[] a, double[] b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var m = new double[9];
        for (var i = 0; i < 3; i++)
        {
            for (var j = 0; j < 3; j++)
            {
                m[(i * 3) + j] = (a[i * 3] * b[j]) + (a[(i * 3) + 1] * b[3 + j]) + (a[(i * 3) + 2] * b[6 + j]);
            }
        }
        return m;
    }

    /// <summary>Transpose (= inverse for a rotation).</summary>
    public static double[] Transpose(double[] r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return [r[0], r[3], r[6], r[1], r[4], r[7], r[2], r[5], r[8]];
    }

    /// <summary>Angle of the rotation taking <paramref name="a"/>'s rotation to <paramref name="b"/>'s, degrees.</summary>
    public static double AngleBetweenDeg(RigidTransform a, RigidTransform b)
    {
        var d = Multiply(Transpose(RotationMatrix(a)), RotationMatrix(b));
        return VectorFromMatrix(d).Length * 180.0 / Math.PI;
    }
}
