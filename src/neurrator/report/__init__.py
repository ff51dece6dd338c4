"""neurrator.report"""
