"""retrain"""
