using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace XenAoe.Net;

/// <summary>Rare-path throws, kept out of the callers so the hot paths stay small.</summary>
[StackTraceHidden]
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowSocketError(string operation, int errno, string? interfaceName = null) =>
        throw new PacketSocketException(operation, errno, interfaceName);

    [DoesNotReturn]
    public static void ThrowInterfaceNotFound(string name) => throw new NetworkInterfaceNotFoundException(name);

    [DoesNotReturn]
    public static void ThrowBatchFull(int capacity) =>
        throw new InvalidOperationException($"The packet batch is full ({capacity} frames); send or clear it before appending.");

    [DoesNotReturn]
    public static void ThrowIndexOutOfRange(int index, int capacity) =>
        throw new ArgumentOutOfRangeException(nameof(index), index, $"Slot index must be in [0, {capacity}).");

    [DoesNotReturn]
    public static void ThrowCountOutOfRange(int count, int capacity) =>
        throw new ArgumentOutOfRangeException(nameof(count), count, $"Count must be in [0, {capacity}].");

    [DoesNotReturn]
    public static void ThrowLengthOutOfRange(int length, int frameSize) =>
        throw new ArgumentOutOfRangeException(nameof(length), length, $"Frame length must be in [0, {frameSize}].");

    [DoesNotReturn]
    public static void ThrowObjectDisposed(string typeName) => throw new ObjectDisposedException(typeName);

    public static string ErrorMessage(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
