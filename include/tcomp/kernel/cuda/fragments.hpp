// Which matrix element each lane of a warp holds in the registers of the mma.sync / mma.sp shapes the
// CUDA kernels use (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k32" and "... sparse mma.m16n8k64").
// One definition, shared by the kernels (which address shared memory through it) and the host tests
// (which rebuild a warp's registers from a packed weight image and check the product), so a layout
// mistake shows up on the CPU too. groupID = lane / 4, threadID_in_group = lane % 4 as in the PTX text.
//
// Host and device code; no CUDA headers needed.
#pragma once

#include "tcomp/core/config.hpp"

namespace tcomp::cuda::fragment {

TCOMP_HOST_DEVICE constexpr int group_of(int lane) { return lane >> 2; }
TCOMP_HOST_DEVICE constexpr int thread_in_group(int lane) { return lane & 3; }

// --- mma.m16n8k32.row.col.s32.s8.s8.s32 (dense int8). A is 16 x 32 (row-major), B is 32 x 8 (column-major,
// i.e. the weight row W[n][k..] is contiguous), C is 16 x 8. Every A/B register holds 4 consecutive k.
/// A register r (0..3): row and first column of its four bytes.
TCOMP_HOST_DEVICE constexpr int s8_a_row(int lane, int r) { return group_of(lane) + 8 * (r & 1); }
TCOMP_HOST_DEVICE constexpr int s8_a_col(int lane, int r) { return 4 * thread_in_group(lane) + 16 * (r >> 1); }
/// B register r (0..1 dense k32; 0..3 for the k64 B operand of sparse mma): column n and first k.
TCOMP_HOST_DEVICE constexpr int s8_b_col(int lane) { return group_of(lane); }
TCOMP_HOST_DEVICE constexpr int s8_b_k(int lane, int r) { return 4 * thread_in_group(lane) + 16 * r; }

// --- mma.m16n8k16.row.col.f32.{f16,bf16} (dense 16-bit). Every A/B register holds 2 consecutive k.
/// A register r (0..3): row and first column of its two halves.
TCOMP_HOST_DEVICE constexpr int h_a_row(int lane, int r) { return group_of(lane) + 8 * (r & 1); }
TCOMP_HOST_DEVICE constexpr int h_a_col(int lane, int r) { return 2 * thread_in_group(lane) + 8 * (r >> 1); }
/// B register r (0..1): column n and first k of its two halves.
TCOMP_HOST_DEVICE constexpr int h_b_col(int lane) { return group_of(lane); }
TCOMP_HOST_DEVICE constexpr int h_b_k(int lane, int r) { return 2 * thread_in_group(lane) + 8 * r; }

// --- Accumulators C/D of every m16n8 shape (s32 or f32): register r (0..3).
TCOMP_HOST_DEVICE constexpr int c_row(int lane, int r) { return group_of(lane) + 8 * (r >> 1); }
TCOMP_HOST_DEVICE constexpr int c_col(int lane, int r) { return 2 * thread_in_group(lane) + (r & 1); }

// --- mma.sp::ordered_metadata.m16n8k64.row.col.s32.s8.s8.s32 (2:4 sparse int8, sparsity selector 0).
// A is the 16 x 64 sparse operand stored compressed as 16 x 32: in each group of 4 consecutive k, the two
// kept values in increasing k. Its registers map like the dense k32 A above (on compressed columns).
// Metadata: one 32-bit word per lane. Each 4-bit nibble describes one group of 4 consecutive k of one row:
// bits [1:0] the index (0..3) of the first kept value, bits [3:2] the second (greater) index. Lane 4g + t
// holds 8 consecutive groups of one row:
//     nibble i (bits 4i..4i+3, i = 0..7): row g + 8 * (t % 2), group 8 * (t / 2) + i
// i.e. t = 0: row g, k 0..31; t = 1: row g + 8, k 0..31; t = 2: row g, k 32..63; t = 3: row g + 8, k 32..63.
// Measured on an H200 (sm_90) by tests/cuda's probe, 2026-12-04; a first guess (rows g and g + 8 in the two
// 16-bit halves of each word, as CUTLASS's reordered global layout suggests) was wrong.
TCOMP_HOST_DEVICE constexpr int sp_meta_lane(int row, int group) { return 4 * (row & 7) + (row >> 3) + 2 * (group >> 3); }
TCOMP_HOST_DEVICE constexpr int sp_meta_shift(int, int group) { return 4 * (group & 7); }
/// The (row, group) that bit field `nibble` (0..7) of lane `lane` describes.
TCOMP_HOST_DEVICE constexpr int sp_meta_row(int lane, int) { return group_of(lane) + 8 * (thread_in_group(lane) & 1); }
TCOMP_HOST_DEVICE constexpr int sp_meta_group(int lane, int nibble) { return 8 * (thread_in_group(lane) >> 1) + nibble; }

/// The nibble of a group whose kept indices are first < second (both 0..3).
TCOMP_HOST_DEVICE constexpr unsigned sp_nibble(unsigned first, unsigned second) { return first | (second << 2); }

}  // namespace tcomp::cuda::fragment
