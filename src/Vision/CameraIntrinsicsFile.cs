using System.Globalization;
using OpenCvSharp;

namespace SmpRobot.Vision;

/// <summary>
/// Reads camera intrinsics from the calibration file OpenCV writes with <c>cv::FileStorage</c> (YAML, JSON or
/// XML), as its calibration sample and most calibration tools do: <c>image_width</c>, <c>image_height</c>,
/// <c>camera_matrix</c> (3×3) and <c>distortion_coefficients</c> (k1 k2 p1 p2 [k3], as a row or a column).
/// OpenCvSharp's FileStorage reads it (no hand-written YAML parsing).
/// </summary>
public static class CameraIntrinsicsFile
{
    /// <summary>Loads and checks the file; <see cref="InvalidDataException"/> naming what is missing or wrong.</summary>
    public static CameraIntrinsics Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new InvalidDataException($"intrinsics file '{path}' does not exist");
        FileStorage storage;
        try
        {
            storage = new FileStorage(path, FileStorage.Modes.Read);
        }
        catch (OpenCVException e)
        {
            throw new InvalidDataException($"intrinsics file '{path}' is not an OpenCV FileStorage file (YAML, JSON or XML): {e.Message}", e);
        }
        using (storage)
        {
            if (!storage.IsOpened()) throw new InvalidDataException($"intrinsics file '{path}' could not be read as an OpenCV FileStorage file (YAML, JSON or XML)");
            var width = Int(storage, path, "image_width");
            var height = Int(storage, path, "image_height");
            using var k = Matrix(storage, path, "camera_matrix", "cameraMatrix");
            if (k.Rows != 3 || k.Cols != 3) throw new InvalidDataException($"intrinsics file '{path}': camera_matrix must be 3x3, not {k.Rows}x{k.Cols}");
            using var d = Matrix(storage, path, "distortion_coefficients", "distCoeffs");
            var coefficients = new List<double>();
            int rows = d.Rows, cols = d.Cols;
            for (var r = 0; r < rows; r++)
            {
                for (var c = 0; c < cols; c++) coefficients.Add(d.At<double>(r, c));
            }
            if (coefficients.Count < 4) throw new InvalidDataException($"intrinsics file '{path}': distortion_coefficients needs at least 4 values (k1 k2 p1 p2 [k3]), not {coefficients.Count}");
            // The tracker models k1 k2 p1 p2 k3; OpenCV's rational and thin-prism terms must be zero.
            if (coefficients.Skip(5).Any(v => v != 0)) throw new InvalidDataException($"intrinsics file '{path}': only the k1 k2 p1 p2 k3 distortion model is supported (coefficients beyond the fifth are not zero)");
            while (coefficients.Count < 5) coefficients.Add(0);
            var intrinsics = new CameraIntrinsics(width, height, k.At<double>(0, 0), k.At<double>(1, 1), k.At<double>(0, 2), k.At<double>(1, 2), [.. coefficients.Take(5)]);
            if (!(intrinsics.FxPx > 0 && intrinsics.FyPx > 0) || intrinsics.CxPx < 0 || intrinsics.CxPx > width || intrinsics.CyPx < 0 || intrinsics.CyPx > height
                || k.At<double>(2, 2) != 1 || k.At<double>(0, 1) != 0 || !coefficients.All(double.IsFinite))
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"intrinsics file '{path}': not a camera matrix for {width}x{height} px (fx {intrinsics.FxPx}, fy {intrinsics.FyPx}, cx {intrinsics.CxPx}, cy {intrinsics.CyPx}; [2,2] must be 1 and the skew 0)"));
            }
            return intrinsics;
        }
    }

    private static int Int(FileStorage storage, string path, string name)
    {
        using var node = storage[name];
        if (node is null || node.Empty || !node.IsInt) throw new InvalidDataException($"intrinsics file '{path}' has no {name} (intrinsics belong to one image size)");
        var value = node.ReadInt();
        if (value is < 16 or > 16384) throw new InvalidDataException($"intrinsics file '{path}': {name} {value} is not an image size");
        return value;
    }

    private static Mat Matrix(FileStorage storage, string path, params string[] names)
    {
        foreach (var name in names)
        {
            using var node = storage[name];
            if (node is null || node.Empty) continue;
            var m = node.ReadMat();
            if (m is null || m.Empty())
            {
                m?.Dispose();
                continue;
            }
            var converted = new Mat();
            m.ConvertTo(converted, MatType.CV_64FC1);
            m.Dispose();
            return converted;
        }
        throw new InvalidDataException($"intrinsics file '{path}' has no {names[0]}");
    }
}
