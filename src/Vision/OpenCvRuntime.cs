using System.Runtime.InteropServices;

namespace SmpRobot.Vision;

/// <summary>
/// Process-wide settings of the OpenCV runtime, applied once at start-up before any OpenCV call.
/// </summary>
public static partial class OpenCvRuntime
{
    /// <summary>OpenCV's own switch for its Intel IPP code paths (read once, when OpenCV first uses IPP).</summary>
    public const string IppVariable = "OPENCV_IPP";

    /// <summary>
    /// Turns OpenCV's IPP dispatch off for this process unless <c>OPENCV_IPP</c> is already set (then OpenCV's
    /// own choice stands: set it, e.g. <c>OPENCV_IPP=avx2</c>, to keep IPP). Why: IPP checks the CPU's features
    /// with CPUID on its calls, and a hypervisor traps CPUID (about 10 µs each on the firecracker VMs the suite and
    /// the benches run on). The tracker makes hundreds of small OpenCV calls per frame, so on such a machine IPP
    /// made a 720p frame cost 3.0 ms instead of 0.46 ms and a full-frame search 10.7 ms instead of 2.7 ms
    /// (<c>./build.sh bench tracking</c>); OpenCV's own SIMD code paths remain. Must run before the first OpenCV
    /// call: OpenCV reads the variable from the process environment (.NET's
    /// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach it on Linux, hence libc's setenv).
    /// Returns what OpenCV will see: "disabled", or the value that was already set. Does nothing off Linux.
    /// </summary>
    public static string ConfigureIpp()
    {
        var existing = Environment.GetEnvironmentVariable(IppVariable);
        if (!string.IsNullOrEmpty(existing)) return existing;
        if (!OperatingSystem.IsLinux()) return "default";
        if (SetEnv(IppVariable, "disabled", 0) != 0) return "default";
        Environment.SetEnvironmentVariable(IppVariable, "disabled"); // and for .NET readers of the environment
        return "disabled";
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
